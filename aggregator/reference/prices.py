"""Energy prices per pricing node and interval, loaded from the market's published CSV.

The file: a header `node,start,price_per_mwh[,interval_minutes]`, one row per node and
interval, `start` an ISO 8601 time with its UTC offset (so the repeated hour of a DST
day is two rows, not one), prices in $/MWh (negative prices happen and are kept).
All or nothing: every row is checked first; with any problem nothing is written and
every problem is reported with its line. Then one set-based upsert.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.db import connection, transaction
from django.utils import timezone

from aggregator.reference.models import EnergyPrice, Market, NetBenefitsPrice

INTERVALS = (5, 15, 60)


@dataclass
class PriceProblem:
    line: int
    field: str
    message: str


@dataclass
class PriceImport:
    rows: int = 0
    stored: int = 0
    problems: list[PriceProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _parse(text: str, default_interval: int) -> tuple[list[tuple], list[PriceProblem]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"node", "start", "price_per_mwh"} - set(reader.fieldnames or [])
    if missing:
        return [], [
            PriceProblem(
                1,
                ",".join(sorted(missing)),
                "Missing column(s): the header is node,start,price_per_mwh[,interval_minutes].",
            )
        ]
    rows, problems, seen = [], [], {}
    for line, row in enumerate(reader, start=2):
        node = (row["node"] or "").strip()
        if not node or len(node) > 64:
            problems.append(PriceProblem(line, "node", "A pricing node name of 1 to 64 characters."))
            continue
        try:
            start = datetime.fromisoformat((row["start"] or "").strip())
        except ValueError:
            problems.append(PriceProblem(line, "start", "Not an ISO 8601 time."))
            continue
        if start.tzinfo is None:
            problems.append(
                PriceProblem(line, "start", "The time has no UTC offset; prices must say which hour they are.")
            )
            continue
        try:
            price = Decimal((row["price_per_mwh"] or "").strip())
            if not price.is_finite() or abs(price) >= Decimal("1e8"):
                raise InvalidOperation
        except InvalidOperation:
            problems.append(PriceProblem(line, "price_per_mwh", "Not a price in $/MWh."))
            continue
        raw = (row.get("interval_minutes") or "").strip()
        interval = int(raw) if raw.isdigit() else (default_interval if not raw else -1)
        if interval not in INTERVALS:
            problems.append(PriceProblem(line, "interval_minutes", f"One of {', '.join(map(str, INTERVALS))}."))
            continue
        if start.timestamp() % (interval * 60):
            problems.append(PriceProblem(line, "start", f"Not on the {interval}-minute grid."))
            continue
        key = (node, start.timestamp())
        if key in seen:
            problems.append(PriceProblem(line, "start", f"Same node and interval as line {seen[key]}."))
            continue
        seen[key] = line
        rows.append((node, start, interval, price))
    return rows, problems


_UPSERT = """
INSERT INTO settlement_energyprice AS p (market_id, node, start, interval_minutes, price_per_mwh, imported_at)
SELECT %(market)s, t.node, t.start, t.minutes, t.price, %(now)s
FROM unnest(%(nodes)s::varchar[], %(starts)s::timestamptz[], %(minutes)s::smallint[], %(prices)s::numeric[])
     AS t(node, start, minutes, price)
ON CONFLICT (market_id, node, start) DO UPDATE SET price_per_mwh = EXCLUDED.price_per_mwh,
    interval_minutes = EXCLUDED.interval_minutes, imported_at = EXCLUDED.imported_at
"""


def import_prices(*, market: Market, source: bytes) -> PriceImport:
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError:
        return PriceImport(problems=[PriceProblem(1, "file", "Not UTF-8 text.")])
    rows, problems = _parse(text, market.settlement_interval_minutes)
    report = PriceImport(rows=len(rows) + len(problems), problems=problems)
    if problems or not rows:
        if not rows and not problems:
            report.problems.append(PriceProblem(1, "file", "No price rows."))
        return report
    nodes, starts, minutes, prices = (list(column) for column in zip(*rows))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _UPSERT,
            {
                "market": market.pk,
                "now": timezone.now(),
                "nodes": nodes,
                "starts": starts,
                "minutes": minutes,
                "prices": prices,
            },
        )
        report.stored = cursor.rowcount
    return report


def prices_at(*, market: Market, node: str, start: datetime, end: datetime) -> dict[datetime, Decimal]:
    """Interval start -> $/MWh at `node` over [start, end)."""

    return dict(
        EnergyPrice.objects.filter(market=market, node=node, start__gte=start, start__lt=end)
        .order_by("start")
        .values_list("start", "price_per_mwh")
    )


def import_net_benefits(*, market: Market, source: bytes) -> PriceImport:
    """The market's monthly net-benefits thresholds (CSV `month,price_per_mwh`, month as YYYY-MM).

    All or nothing, like prices; a month already stored takes the new value (ISOs revise them).
    """
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError:
        return PriceImport(problems=[PriceProblem(1, "file", "Not UTF-8 text.")])
    reader = csv.DictReader(io.StringIO(text))
    missing = {"month", "price_per_mwh"} - set(reader.fieldnames or [])
    if missing:
        return PriceImport(
            problems=[
                PriceProblem(1, ",".join(sorted(missing)), "Missing column(s): the header is month,price_per_mwh.")
            ]
        )
    months: dict[date, tuple[int, Decimal]] = {}
    problems = []
    rows = 0
    for line, row in enumerate(reader, start=2):
        rows += 1
        try:
            month = datetime.strptime((row["month"] or "").strip(), "%Y-%m").date()
        except ValueError:
            problems.append(PriceProblem(line, "month", "A month as YYYY-MM."))
            continue
        try:
            price = Decimal((row["price_per_mwh"] or "").strip())
            if not price.is_finite() or abs(price) >= Decimal("1e8"):
                raise InvalidOperation
        except InvalidOperation:
            problems.append(PriceProblem(line, "price_per_mwh", "Not a price in $/MWh."))
            continue
        if month in months:
            problems.append(PriceProblem(line, "month", f"Same month as line {months[month][0]}."))
            continue
        months[month] = (line, price)
    report = PriceImport(rows=rows, problems=problems)
    if not problems and not months:
        report.problems.append(PriceProblem(1, "file", "No rows."))
    if report.problems:
        return report
    now = timezone.now()
    with transaction.atomic():
        for month, (_, price) in months.items():
            NetBenefitsPrice.objects.update_or_create(
                market=market, month=month, defaults={"price_per_mwh": price, "imported_at": now}
            )
    report.stored = len(months)
    return report
