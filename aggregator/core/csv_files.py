"""Operators' CSV files: reading them (decoding, a header, each record with its file line) and writing the
exports, whose text cells a spreadsheet must show as text, never run as formulas."""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aggregator.core.errors import Problem


@dataclass(frozen=True)
class RowError:
    """A problem in an operator's file, by line (the header is line 1) and column."""

    row: int
    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


@dataclass
class ImportReport:
    """What an all-or-nothing import of an operator's file did: its rows, how many records it stored, and
    (instead, when there are any) every problem by line and column."""

    rows: int = 0
    stored: int = 0
    problems: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class UnreadableFile(Exception):
    def __init__(self, line: int, problem: Problem):
        self.line, self.problem = line, problem
        super().__init__(problem.message)


def read_csv(source, *, max_rows: int) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(lower-cased header, [(file line, fields)]) of every non-blank record, or UnreadableFile."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = source.count(b"\n", 0, exc.start) + 1
            raise UnreadableFile(
                line, Problem("encoding", f"The file is not UTF-8 text ({exc.reason} at byte {exc.start}).")
            ) from exc
    if isinstance(source, str):
        source = io.StringIO(source)
    reader = csv.reader(source, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise UnreadableFile(1, Problem("empty", "The file is empty."))
        rows = []
        line = reader.line_num + 1
        for record in reader:
            if record:
                rows.append((line, record))
            line = reader.line_num + 1
            if len(rows) > max_rows:
                raise UnreadableFile(0, Problem("too_many_rows", f"At most {max_rows} rows per file."))
    except csv.Error as exc:
        raise UnreadableFile(reader.line_num, Problem("malformed_csv", f"Malformed CSV: {exc}.")) from exc
    return [h.strip().lstrip("\ufeff").lower() for h in header], rows


# A spreadsheet reads a cell starting with one of these as a formula (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def safe_cell(value: Any) -> Any:
    """`value` as an export cell: text that a spreadsheet would run as a formula gets a leading single quote
    (the OWASP escape); numbers, including negative ones written as text (-5.2), stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def write_csv(out, header: Iterable[Any], rows: Iterable[Iterable[Any]], **fmtparams: Any) -> None:
    """Write an export: the header, then each row, every cell through safe_cell."""
    writer = csv.writer(out, **fmtparams)
    writer.writerow([safe_cell(cell) for cell in header])
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
