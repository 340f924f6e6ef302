"""The file adapter: offers written into MarketConnection.directory in the market's documented layout, awards read
back from its `awards/` inbox (each file moved to `processed/` once read).

Layouts are data, one JSON file per layout in `layouts/` (the connection's `layout` names it):

- `format`: csv or xml; `time_zone`: UTC or `market` (times carry that offset); `curve`: cumulative (each point is
  the MW level its price applies up to, as the ISOs' templates have it) or incremental (our segments as they are);
  `max_points`: how many price-quantity pairs a row or curve has room for;
- `offer` and `award`: the document's `file` name pattern (str.format over the document's fields, e.g.
  `{window_start:%Y%m%dT%H%MZ}`), the award inbox's glob `pattern`, and either CSV `columns` (one row per interval;
  a column with `"repeat": "points"` expands to name{n} for n = 1..max_points) or an XML `root` element tree
  (`tag`, `children`, `repeat`: intervals | points, `value` or `const`);
- a value is `<document>.<field>` (offer: the OfferWire's fields; award: the AwardWire's), `interval.<field>`
  (the interval's fields, with `end`) or `point.<field>` (mw, price); formats: text (default), int, datetime,
  date, time (HH:MM), mw (the platform's kW as MW), price ($/MWh, two decimals).

The same description writes and reads, so a layout round-trips: what `submit` writes, `read_offer` reads back as
the same OfferWire. Every layout says what it is based on and where it departs from the ISO's template
(`based_on`, `departures`). Awards may also arrive as JSON files in the AwardWire form (the simulator's).

Writes are atomic (a temporary file renamed into place); a resubmitted offer ref overwrites its own file, so a
retry is the same offer. Any OS error is a SubmissionFailed: the offer stays approved and beat retries it.
"""

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from aggregator.market.adapters import SubmissionFailed, register
from aggregator.market.wire import AwardWire, OfferWire

if TYPE_CHECKING:
    from aggregator.market.models import MarketConnection

LAYOUTS = Path(__file__).parent / "layouts"


class UnknownLayout(SubmissionFailed):
    pass


@cache
def load_layout(name: str) -> dict:
    path = LAYOUTS / f"{name}.json"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(sorted(p.stem for p in LAYOUTS.glob("*.json")))
        raise UnknownLayout(f"no file layout {name!r} (known: {known})")
    return json.loads(path.read_text())


def layout_names() -> list[str]:
    return sorted(p.stem for p in LAYOUTS.glob("*.json"))


# Formatting and parsing of one value.


def _format(value: Any, fmt: str, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if fmt == "datetime":
        return _instant(value).astimezone(zone).isoformat()
    if fmt == "date":
        return _instant(value).astimezone(zone).date().isoformat()
    if fmt == "time":
        return _instant(value).astimezone(zone).strftime("%H:%M")
    if fmt == "mw":
        return f"{float(value) / 1000:.6f}".rstrip("0").rstrip(".") or "0"
    if fmt == "price":
        return f"{float(value):.2f}"
    if fmt == "int":
        return str(int(value))
    return str(value)


def _parse(text: str, fmt: str) -> Any:
    text = text.strip()
    if fmt in ("date", "time"):
        return text  # combined into a datetime by _assemble
    if text == "":
        return None
    if fmt == "datetime":
        return datetime.fromisoformat(text)
    if fmt == "mw":
        return round(float(text) * 1000, 3)
    if fmt == "price":
        return float(text)
    if fmt == "int":
        return int(text)
    return text


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# Documents as plain values: {"doc": {...}, "intervals": [{..., "points": [{mw, price}]}]}.


def _offer_document(offer: OfferWire, curve: str) -> dict:
    step = timedelta(minutes=offer["interval_minutes"])
    intervals = []
    for interval in offer["intervals"]:
        start = datetime.fromisoformat(interval["start"])
        points, level = [], 0.0
        for kw, price in interval["segments"]:
            level = level + kw if curve == "cumulative" else kw
            points.append({"mw": round(level, 3), "price": price})
        intervals.append({**interval, "start": start, "end": start + step, "points": points})
    doc = {
        **{k: v for k, v in offer.items() if k != "intervals"},
        "window_start": datetime.fromisoformat(offer["window_start"]),
        "window_end": datetime.fromisoformat(offer["window_end"]),
        "deadline": datetime.fromisoformat(offer["deadline"]),
    }
    return {"doc": doc, "intervals": intervals}


def _award_document(award: AwardWire) -> dict:
    return {
        "doc": {k: v for k, v in award.items() if k != "intervals"},
        "intervals": [
            {**i, "start": datetime.fromisoformat(i["start"]), "end": datetime.fromisoformat(i["end"])}
            for i in award["intervals"]
        ],
    }


def _lookup(key: str, scopes: dict) -> Any:
    scope, _, name = key.partition(".")
    source = scopes["point" if scope == "point" else "interval" if scope == "interval" else "doc"]
    return None if source is None else source.get(name)


def _store(key: str, fmt: str, value: Any, scopes: dict) -> None:
    scope, _, name = key.partition(".")
    target = scopes["point" if scope == "point" else "interval" if scope == "interval" else "doc"]
    if target is None:
        return
    if fmt in ("date", "time"):
        target.setdefault(f"_{name}_parts", {})[fmt] = value
    else:
        target[name] = value


def _assemble(values: dict, zone: ZoneInfo) -> dict:
    """Join a date column and a time column of one field into its instant (in the layout's clock)."""
    for key in [k for k in values if k.startswith("_") and k.endswith("_parts")]:
        parts = values.pop(key)
        name = key[1:-6]
        if name in values or "date" not in parts:
            continue
        clock = time.fromisoformat(parts.get("time") or "00:00")
        values[name] = datetime.combine(date.fromisoformat(parts["date"]), clock, tzinfo=zone).astimezone(UTC)
    return values


# CSV.


def _csv_header(columns: list[dict], max_points: int) -> list[tuple[str, dict, int | None]]:
    header = []
    for column in columns:
        if column.get("repeat") == "points":
            header += [(column["name"].format(n=n), column, n - 1) for n in range(1, max_points + 1)]
        else:
            header.append((column["name"], column, None))
    return header


def _write_csv(spec: dict, document: dict, *, max_points: int, zone: ZoneInfo) -> str:
    header = _csv_header(spec["columns"], max_points)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([name for name, _, _ in header])
    for interval in document["intervals"]:
        points = interval.get("points", [])
        row = []
        for _, column, n in header:
            point = points[n] if n is not None and n < len(points) else None
            if n is not None and point is None:
                row.append("")
                continue
            scopes = {"doc": document["doc"], "interval": interval, "point": point}
            value = column["const"] if "const" in column else _lookup(column["value"], scopes)
            row.append(_format(value, column.get("format", "text"), zone))
        writer.writerow(row)
    return out.getvalue()


def _read_csv(spec: dict, text: str, *, max_points: int, zone: ZoneInfo) -> list[dict]:
    """Rows as documents; rows of one document (the same doc fields) are grouped in file order."""
    header = _csv_header(spec["columns"], max_points)
    documents: list[dict] = []
    for record in csv.DictReader(io.StringIO(text)):
        doc: dict = {}
        interval: dict = {"points": []}
        for name, column, n in header:
            if "const" in column:
                continue
            cell = record.get(name) or ""
            fmt = column.get("format", "text")
            if n is not None:
                if cell.strip() == "":
                    continue
                while len(interval["points"]) <= n:
                    interval["points"].append({})
                _store(
                    column["value"],
                    fmt,
                    _parse(cell, fmt),
                    {"doc": None, "interval": None, "point": interval["points"][n]},
                )
                continue
            _store(column["value"], fmt, _parse(cell, fmt), {"doc": doc, "interval": interval, "point": None})
        interval["points"] = [p for p in interval["points"] if p]
        doc, interval = _assemble(doc, zone), _assemble(interval, zone)
        if documents and documents[-1]["doc"] == doc:
            documents[-1]["intervals"].append(interval)
        else:
            documents.append({"doc": doc, "intervals": [interval]})
    return documents


# XML.


def _tag(namespace: str, tag: str) -> str:
    return f"{{{namespace}}}{tag}" if namespace else tag


def _write_xml_node(
    node: dict, parent: ET.Element | None, scopes: dict, *, ns: str, zone: ZoneInfo, max_points: int
) -> ET.Element:
    element = ET.Element(_tag(ns, node["tag"])) if parent is None else ET.SubElement(parent, _tag(ns, node["tag"]))
    if "const" in node:
        element.text = str(node["const"])
    elif "value" in node:
        element.text = _format(_lookup(node["value"], scopes), node.get("format", "text"), zone)
    for child in node.get("children", []):
        repeat = child.get("repeat")
        if repeat == "intervals":
            for interval in scopes["intervals"]:
                _write_xml_node(
                    child, element, {**scopes, "interval": interval}, ns=ns, zone=zone, max_points=max_points
                )
        elif repeat == "points":
            for point in (scopes["interval"] or {}).get("points", [])[:max_points]:
                _write_xml_node(child, element, {**scopes, "point": point}, ns=ns, zone=zone, max_points=max_points)
        else:
            _write_xml_node(child, element, scopes, ns=ns, zone=zone, max_points=max_points)
    return element


def _write_xml(spec: dict, document: dict, *, ns: str, max_points: int, zone: ZoneInfo) -> str:
    if ns:
        ET.register_namespace("", ns)
    scopes = {"doc": document["doc"], "intervals": document["intervals"], "interval": None, "point": None}
    root = _write_xml_node(spec["root"], None, scopes, ns=ns, zone=zone, max_points=max_points)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _read_xml_node(node: dict, element: ET.Element, scopes: dict, *, ns: str) -> None:
    if "value" in node and "const" not in node:
        fmt = node.get("format", "text")
        _store(node["value"], fmt, _parse(element.text or "", fmt), scopes)
    for child in node.get("children", []):
        matches = element.findall(_tag(ns, child["tag"]))
        repeat = child.get("repeat")
        if repeat == "intervals":
            for match in matches:
                interval: dict = {"points": []}
                scopes["intervals"].append(interval)
                _read_xml_node(child, match, {**scopes, "interval": interval}, ns=ns)
        elif repeat == "points":
            for match in matches:
                point: dict = {}
                scopes["interval"]["points"].append(point)
                _read_xml_node(child, match, {**scopes, "point": point}, ns=ns)
        elif matches:
            _read_xml_node(child, matches[0], scopes, ns=ns)


def _read_xml(spec: dict, text: str, *, ns: str, zone: ZoneInfo) -> list[dict]:
    root = ET.fromstring(text)
    if root.tag != _tag(ns, spec["root"]["tag"]):
        raise ValueError(f"root element {root.tag} is not {spec['root']['tag']}")
    scopes: dict = {"doc": {}, "intervals": [], "interval": None, "point": None}
    _read_xml_node(spec["root"], root, scopes, ns=ns)
    return [{"doc": _assemble(scopes["doc"], zone), "intervals": [_assemble(i, zone) for i in scopes["intervals"]]}]


# Documents back to wire forms.


def _iso(value: Any) -> str:
    return _instant(value).isoformat()


def _offer_wire(document: dict, curve: str) -> OfferWire:
    doc = document["doc"]
    intervals = []
    for interval in document["intervals"]:
        segments, level = [], 0.0
        for point in interval.get("points", []):
            kw = point["mw"] - level if curve == "cumulative" else point["mw"]
            level = point["mw"] if curve == "cumulative" else level
            segments.append([round(kw, 3), point["price"]])
        intervals.append(
            {
                "start": _iso(interval["start"]),
                "min_kw": interval.get("min_kw") or 0.0,
                "max_kw": interval.get("max_kw") or 0.0,
                "ramp_kw_per_minute": interval.get("ramp_kw_per_minute") or 0.0,
                "notification_minutes": interval.get("notification_minutes") or 0,
                "min_run_minutes": interval.get("min_run_minutes") or 0,
                "max_run_minutes": interval.get("max_run_minutes"),
                "segments": segments,
            }
        )
    return {
        "offer_id": doc["offer_id"],
        "market": doc["market"],
        "resource": doc["resource"],
        "market_kind": doc["market_kind"],
        "window_start": _iso(doc["window_start"]),
        "window_end": _iso(doc["window_end"]),
        "interval_minutes": doc["interval_minutes"],
        "deadline": _iso(doc["deadline"]),
        "intervals": intervals,  # type: ignore[typeddict-item]
    }


def _award_wire(document: dict) -> AwardWire:
    doc = document["doc"]
    return {
        "award_id": doc["award_id"],
        "offer_id": doc["offer_id"],
        "resource": doc["resource"],
        "market_kind": doc["market_kind"],
        "intervals": [
            {
                "start": _iso(i["start"]),
                "end": _iso(i["end"]),
                "kw": i.get("kw") or 0.0,
                "price_per_mwh": i.get("price_per_mwh") or 0.0,
            }
            for i in document["intervals"]
        ],
    }


@dataclass
class FileLayout:
    """A layout description bound to a market's clock."""

    spec: dict
    market_time_zone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.market_time_zone if self.spec.get("time_zone") == "market" else "UTC")

    @property
    def max_points(self) -> int:
        return int(self.spec.get("max_points", 10))

    def _render(self, part: str, document: dict) -> str:
        spec = self.spec[part]
        if self.spec["format"] == "csv":
            return _write_csv(spec, document, max_points=self.max_points, zone=self.zone)
        return _write_xml(spec, document, ns=self.spec.get("namespace", ""), max_points=self.max_points, zone=self.zone)

    def _documents(self, part: str, text: str) -> list[dict]:
        spec = self.spec[part]
        if self.spec["format"] == "csv":
            return _read_csv(spec, text, max_points=self.max_points, zone=self.zone)
        return _read_xml(spec, text, ns=self.spec.get("namespace", ""), zone=self.zone)

    def offer_file_name(self, offer: OfferWire) -> str:
        fields = _offer_document(offer, "incremental")["doc"]
        fields = {**fields, **{k: v.astimezone(UTC) for k, v in fields.items() if isinstance(v, datetime)}}
        return self.spec["offer"]["file"].format(**fields)

    def render_offer(self, offer: OfferWire) -> str:
        if any(len(i["segments"]) > self.max_points for i in offer["intervals"]):
            raise SubmissionFailed(f"the layout {self.spec['name']} takes at most {self.max_points} segments")
        return self._render("offer", _offer_document(offer, self.spec.get("curve", "incremental")))

    def read_offers(self, text: str) -> list[OfferWire]:
        curve = self.spec.get("curve", "incremental")
        return [_offer_wire(d, curve) for d in self._documents("offer", text)]

    def render_award(self, award: AwardWire) -> str:
        return self._render("award", _award_document(award))

    def award_file_name(self, award: AwardWire) -> str:
        return self.spec["award"]["file"].format(**{k: v for k, v in award.items() if k != "intervals"})

    def read_awards(self, text: str) -> list[AwardWire]:
        by_id: dict[str, AwardWire] = {}
        for document in self._documents("award", text):
            wire = _award_wire(document)
            if wire["award_id"] in by_id:
                by_id[wire["award_id"]]["intervals"] += wire["intervals"]
            else:
                by_id[wire["award_id"]] = wire
        return list(by_id.values())


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FileAdapter:
    name = "file"

    def __init__(self, *, directory: str, layout: str, market_time_zone: str = "UTC"):
        self.directory = Path(directory) if directory else None
        self.layout_name = layout
        self.market_time_zone = market_time_zone

    @property
    def layout(self) -> FileLayout:
        return FileLayout(load_layout(self.layout_name), self.market_time_zone)

    def _root(self) -> Path:
        if self.directory is None:
            raise SubmissionFailed("the market connection names no directory")
        return self.directory

    def submit(self, offer: OfferWire) -> str:
        layout = self.layout
        name = layout.offer_file_name(offer)
        try:
            _write_atomically(self._root() / name, layout.render_offer(offer))
        except OSError as exc:
            raise SubmissionFailed(f"could not write {name}: {exc.strerror or exc}") from exc
        return name

    def read_offer(self, name: str) -> list[OfferWire]:
        """The offers in a file this adapter wrote (by the name `submit` returned)."""
        return self.layout.read_offers((self._root() / name).read_text(encoding="utf-8"))

    def fetch_awards(self) -> list[AwardWire]:
        """Awards in `awards/` (the layout's files, and AwardWire JSON files), each file moved to `processed/`
        once read; a file that cannot be read is moved to `rejected/` and skipped."""
        root = self._root()
        inbox, done, bad = root / "awards", root / "processed", root / "rejected"
        if not inbox.is_dir():
            return []
        layout = self.layout
        pattern = layout.spec["award"]["pattern"]
        awards: list[AwardWire] = []
        for path in sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                text = path.read_text(encoding="utf-8")
                if path.suffix == ".json":
                    loaded = json.loads(text)
                    found = loaded if isinstance(loaded, list) else [loaded]
                elif path.match(pattern):
                    found = layout.read_awards(text)
                else:
                    continue
            except (ValueError, KeyError, TypeError, ET.ParseError):
                bad.mkdir(exist_ok=True)
                os.replace(path, bad / path.name)
                continue
            awards += found
            done.mkdir(exist_ok=True)
            os.replace(path, done / path.name)
        return awards


@register("file")
def file_adapter(connection: "MarketConnection") -> FileAdapter:
    return FileAdapter(
        directory=connection.directory, layout=connection.layout, market_time_zone=connection.market.time_zone
    )
