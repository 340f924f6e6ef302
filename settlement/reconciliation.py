"""Reconciliation with the market: import its settlement statement for a resource and compare it, per event and
interval, with our own latest run; say what differs and why, and write the dispute report an analyst sends.

Statement files (CSV, one row per event and interval; a header row names the columns):

- ``generic``: ``event,start,minutes,baseline_kwh,actual_kwh,reduction_kwh,price_per_mwh,amount``, with
  ``start`` an ISO 8601 time with its UTC offset and energy in kWh.
- ``pjm``: ``event,date,hour_ending,cbl_mwh,load_mwh,reduction_mwh,lmp,credit``: hourly, energy in MWh, the
  hour as PJM's hour ending in market time (HE 1 is the first hour of the local day; on the 25-hour day
  HE 1..25 count elapsed hours, so the repeated hour is HE 2 and HE 3).

``event`` is the market's dispatch id (our event's external reference) or our event id. ``baseline``,
``actual`` and ``price`` may be empty; ``reduction`` and ``amount`` ($) are required. All or nothing: any bad
row is reported by line and column and nothing is stored.

Reconciling compares both sides on the coarser of the two interval grids (a 5-minute statement against an
hourly meter sums the market's twelve). An interval matches when energy agrees within 0.1% (at least
0.001 kWh) and money within a cent; otherwise each cause found is named: ``meter_data`` (actual load
differs), ``baseline`` (the baseline differs: baseline days, adjustment), ``price`` (price differs by more than
$0.01/MWh), ``rules`` (the same energy and price paid differently, e.g. the net-benefits test), or
``missing_ours`` / ``missing_market`` when only one side has the interval.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from aggregator.aggregation.models import VirtualResource
from aggregator.core.csv_files import RowError, UnreadableFile, read_csv
from aggregator.reference.models import NetBenefitsPrice
from dispatch.models import DispatchEvent
from settlement.models import MarketStatement, MarketStatementInterval, SettlementRun, SiteSettlement

FORMATS: dict[str, dict[str, str]] = {
    "generic": {
        "event": "event",
        "start": "start",
        "minutes": "minutes",
        "baseline": "baseline_kwh",
        "actual": "actual_kwh",
        "reduction": "reduction_kwh",
        "price": "price_per_mwh",
        "amount": "amount",
    },
    "pjm": {
        "event": "event",
        "date": "date",
        "hour_ending": "hour_ending",
        "baseline": "cbl_mwh",
        "actual": "load_mwh",
        "reduction": "reduction_mwh",
        "price": "lmp",
        "amount": "credit",
    },
}
MAX_ROWS = 500_000
ENERGY_TOLERANCE = Decimal("0.001")  # relative
ENERGY_FLOOR_KWH = Decimal("0.001")
MONEY_TOLERANCE = Decimal("0.01")
PRICE_TOLERANCE = Decimal("0.01")
THOUSAND = Decimal(1000)


@dataclass
class StatementImport:
    rows: int = 0
    statement: MarketStatement | None = None
    problems: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and abs(value) < Decimal("1e10") else None


def import_market_statement(
    *, resource: VirtualResource, source: bytes, file_format: str, file_name: str, by: str
) -> StatementImport:
    """Store the market's statement for `resource` (see the module docstring), all or nothing."""
    report = StatementImport()
    columns = FORMATS.get(file_format)
    if columns is None:
        report.problems.append(RowError(0, "format", "invalid", f"The format is one of {', '.join(FORMATS)}."))
        return report
    try:
        header, records = read_csv(source, max_rows=MAX_ROWS)
    except UnreadableFile as bad:
        report.problems.append(RowError(bad.line, None, bad.problem.code, bad.problem.message))
        return report
    missing = [name for name in columns.values() if name not in header]
    if missing:
        message = f"Missing column(s) {', '.join(missing)}: the header is {','.join(columns.values())}."
        report.problems.append(RowError(1, missing[0], "missing_column", message))
        return report
    at = {key: header.index(name) for key, name in columns.items()}
    report.rows = len(records)
    zone = ZoneInfo(resource.market.time_zone)
    mwh = Decimal(1000) if file_format == "pjm" else Decimal(1)
    rows: list[tuple[int, str, datetime, int, dict[str, Decimal | None]]] = []
    for line, record in records:
        cell = {key: (record[i].strip() if i < len(record) else "") for key, i in at.items()}

        def fail(key: str, message: str, line: int = line) -> None:
            report.problems.append(RowError(line, columns[key], "invalid", message))

        if not cell["event"]:
            fail("event", "The market's dispatch id or our event id.")
            continue
        if file_format == "pjm":
            try:
                day = date.fromisoformat(cell["date"])
            except ValueError:
                fail("date", "The market day, YYYY-MM-DD.")
                continue
            try:
                hour = int(cell["hour_ending"])
            except ValueError:
                fail("hour_ending", "The hour ending, a whole number from 1.")
                continue
            midnight = datetime.combine(day, time(0), zone)
            hours_in_day = int(
                (datetime.combine(day + timedelta(days=1), time(0), zone) - midnight).total_seconds() // 3600
            )
            if not 1 <= hour <= hours_in_day:
                fail("hour_ending", f"{day} has hours ending 1 to {hours_in_day}.")
                continue
            start = (midnight.astimezone(ZoneInfo("UTC")) + timedelta(hours=hour - 1)).astimezone(zone)
            minutes = 60
        else:
            try:
                start = datetime.fromisoformat(cell["start"])
            except ValueError:
                start = None
            if start is None or start.utcoffset() is None:
                fail("start", "An ISO 8601 time with its UTC offset.")
                continue
            try:
                minutes = int(cell["minutes"])
            except ValueError:
                minutes = 0
            if minutes not in (5, 15, 30, 60):
                fail("minutes", "The interval in minutes: 5, 15, 30 or 60.")
                continue
        values: dict[str, Decimal | None] = {}
        bad = False
        for key in ("baseline", "actual", "reduction", "price", "amount"):
            text = cell[key]
            if not text:
                if key in ("reduction", "amount"):
                    fail(key, f"{columns[key]} is required.")
                    bad = True
                values[key] = None
                continue
            number = _number(text)
            if number is None:
                fail(key, f"{columns[key]}: not a number.")
                bad = True
                continue
            values[key] = number * mwh if key in ("baseline", "actual", "reduction") else number
        if bad:
            continue
        rows.append((line, cell["event"], start, minutes, values))

    refs = {ref for _, ref, _, _, _ in rows}
    by_ref = {e.external_ref: e for e in DispatchEvent.objects.filter(resource=resource, external_ref__in=refs)}
    numeric = {int(r) for r in refs if r.isdigit()}
    by_id = {str(e.pk): e for e in DispatchEvent.objects.filter(resource=resource, pk__in=numeric)}
    seen: dict[tuple[int, datetime], int] = {}
    intervals = []
    for line, ref, start, minutes, values in rows:
        event = by_ref.get(ref) or by_id.get(ref)
        if event is None:
            report.problems.append(
                RowError(line, columns["event"], "unknown_event", f"No event {ref!r} of resource {resource.pk}.")
            )
            continue
        key = (event.pk, start)
        if key in seen:
            report.problems.append(
                RowError(line, columns.get("start", "hour_ending"), "duplicate", f"Same interval as line {seen[key]}.")
            )
            continue
        seen[key] = line
        intervals.append(
            MarketStatementInterval(
                event=event,
                start=start,
                minutes=minutes,
                baseline_kwh=values["baseline"],
                actual_kwh=values["actual"],
                reduction_kwh=values["reduction"],
                price_per_mwh=values["price"],
                amount=values["amount"],
            )
        )
    if not report.problems and not intervals:
        report.problems.append(RowError(1, None, "empty", "No rows."))
    if report.problems:
        report.problems.sort(key=lambda p: p.row)
        return report
    with transaction.atomic():
        statement = MarketStatement.objects.create(
            resource=resource,
            file_name=file_name[:200],
            file_format=file_format,
            imported_at=timezone.now(),
            imported_by=by,
        )
        for interval in intervals:
            interval.statement = statement
        MarketStatementInterval.objects.bulk_create(intervals, batch_size=2000)
    report.statement = statement
    return report


@dataclass(frozen=True)
class Figures:
    """One side's figures for an interval: kWh, $/MWh (energy-weighted) and $."""

    baseline_kwh: Decimal | None
    actual_kwh: Decimal | None
    reduction_kwh: Decimal
    price_per_mwh: Decimal | None
    amount: Decimal


@dataclass(frozen=True)
class Line:
    event_id: int
    event_ref: str
    run_version: int | None
    start: datetime
    minutes: int
    ours: Figures | None
    market: Figures | None
    causes: tuple[str, ...]

    @property
    def matched(self) -> bool:
        return not self.causes

    @property
    def difference(self) -> Decimal:
        """The market's amount less ours: what a dispute would claim back (negative: the market paid more)."""
        return (self.ours.amount if self.ours else Decimal(0)) - (self.market.amount if self.market else Decimal(0))


@dataclass
class Reconciliation:
    statement: MarketStatement
    lines: list[Line]

    @property
    def matched(self) -> int:
        return sum(1 for line in self.lines if line.matched)

    @property
    def differences(self) -> list[Line]:
        return [line for line in self.lines if not line.matched]

    def totals(self) -> dict[str, Decimal]:
        ours = sum((line.ours.amount for line in self.lines if line.ours), Decimal(0))
        market = sum((line.market.amount for line in self.lines if line.market), Decimal(0))
        return {"ours": ours, "market": market, "difference": ours - market}


def _sum(values: list[Decimal | None]) -> Decimal | None:
    return None if not values or any(v is None for v in values) else sum(values, Decimal(0))  # type: ignore[arg-type]


def _weighted_price(pairs: list[tuple[Decimal, Decimal | None]]) -> Decimal | None:
    """Energy-weighted mean price of (kWh, $/MWh) pairs; the plain mean when no energy flowed."""
    if not pairs or any(p is None for _, p in pairs):
        return None
    energy = sum((abs(kwh) for kwh, _ in pairs), Decimal(0))
    if energy == 0:
        return sum((p for _, p in pairs), Decimal(0)) / len(pairs)  # type: ignore[misc]
    return sum((abs(kwh) * p for kwh, p in pairs), Decimal(0)) / energy  # type: ignore[operator]


def _our_intervals(run: SettlementRun) -> tuple[dict[datetime, list[tuple]], int]:
    """Start -> [(baseline kWh, actual kWh, reduction kWh, price, amount $)] per measured site, and the interval."""
    zone = ZoneInfo(run.event.resource.market.time_zone)
    applied = {r["code"] for r in run.rules}
    thresholds = {}
    if "net_benefits" in applied:
        thresholds = dict(
            NetBenefitsPrice.objects.filter(market_id=run.event.resource.market_id).values_list(
                "month", "price_per_mwh"
            )
        )
    out: dict[datetime, list[tuple]] = defaultdict(list)
    gaps: set[int] = set()
    for row in SiteSettlement.objects.filter(run=run).only(
        "starts", "baseline_kw", "actual_kw", "reduction_kwh", "price_per_mwh"
    ):
        gaps.update(int((b - a).total_seconds()) for a, b in zip(row.starts, row.starts[1:]))
        seconds = min(gaps) if gaps else int((run.event.end - run.event.start).total_seconds())
        hours = Decimal(seconds) / 3600
        for start, b, a, r, p in zip(row.starts, row.baseline_kw, row.actual_kw, row.reduction_kwh, row.price_per_mwh):
            paid = p
            threshold = thresholds.get(start.astimezone(zone).date().replace(day=1))
            if p is not None and threshold is not None and p < threshold:
                paid = Decimal(0)
            amount = r * (paid or Decimal(0)) / THOUSAND
            out[start].append(
                (
                    None if b is None else Decimal(repr(b)) * hours,
                    None if a is None else Decimal(repr(a)) * hours,
                    r,
                    p,
                    amount,
                )
            )
    interval = min(gaps) if gaps else int((run.event.end - run.event.start).total_seconds())
    return out, max(interval // 60, 1)


def _bucket(start: datetime, minutes: int) -> datetime:
    epoch = int(start.timestamp())
    return datetime.fromtimestamp(epoch - epoch % (minutes * 60), tz=start.tzinfo or ZoneInfo("UTC"))


def _close(a: Decimal | None, b: Decimal | None, *, relative: Decimal, floor: Decimal) -> bool:
    if a is None or b is None:
        return True  # one side does not report it: nothing to compare
    return abs(a - b) <= max(floor, relative * max(abs(a), abs(b)))


def reconcile(statement: MarketStatement) -> Reconciliation:
    """Each event and interval of the statement against our latest run of that event (see the module docstring)."""
    market_rows = defaultdict(list)
    for m in (
        MarketStatementInterval.objects.filter(statement=statement)
        .select_related("event")
        .order_by("event_id", "start")
    ):
        market_rows[m.event_id].append(m)
    latest = {
        run.event_id: run
        for run in SettlementRun.objects.filter(event_id__in=market_rows)
        .select_related("event__resource__market")
        .order_by("event_id", "-version")
        .distinct("event_id")
    }
    lines: list[Line] = []
    for event_id, rows in market_rows.items():
        event = rows[0].event
        run = latest.get(event_id)
        ours, our_minutes = _our_intervals(run) if run else ({}, rows[0].minutes)
        minutes = max(our_minutes, max(m.minutes for m in rows))
        theirs: dict[datetime, list[MarketStatementInterval]] = defaultdict(list)
        for m in rows:
            theirs[_bucket(m.start, minutes)].append(m)
        mine: dict[datetime, list[tuple]] = defaultdict(list)
        for start, sites in ours.items():
            mine[_bucket(start, minutes)].extend(sites)
        for start in sorted(set(theirs) | set(mine)):
            o = mine.get(start)
            t = theirs.get(start)
            our_fig = (
                Figures(
                    _sum([s[0] for s in o]),
                    _sum([s[1] for s in o]),
                    sum((s[2] for s in o), Decimal(0)),
                    _weighted_price([(s[2], s[3]) for s in o]),
                    sum((s[4] for s in o), Decimal(0)),
                )
                if o
                else None
            )
            market_fig = (
                Figures(
                    _sum([m.baseline_kwh for m in t]),
                    _sum([m.actual_kwh for m in t]),
                    sum((m.reduction_kwh for m in t), Decimal(0)),
                    _weighted_price([(m.reduction_kwh, m.price_per_mwh) for m in t]),
                    sum((m.amount for m in t), Decimal(0)),
                )
                if t
                else None
            )
            lines.append(
                Line(
                    event_id=event_id,
                    event_ref=event.external_ref or str(event_id),
                    run_version=run.version if run else None,
                    start=start,
                    minutes=minutes,
                    ours=our_fig,
                    market=market_fig,
                    causes=_causes(our_fig, market_fig),
                )
            )
    return Reconciliation(statement=statement, lines=lines)


def _causes(ours: Figures | None, market: Figures | None) -> tuple[str, ...]:
    if ours is None:
        return ("missing_ours",)
    if market is None:
        return ("missing_market",)
    energy = {"relative": ENERGY_TOLERANCE, "floor": ENERGY_FLOOR_KWH}
    causes = []
    if not _close(ours.actual_kwh, market.actual_kwh, **energy):
        causes.append("meter_data")
    if not _close(ours.baseline_kwh, market.baseline_kwh, **energy):
        causes.append("baseline")
    reduction_differs = not _close(ours.reduction_kwh, market.reduction_kwh, **energy)
    if reduction_differs and not causes:
        causes.append("baseline" if ours.baseline_kwh is None or market.baseline_kwh is None else "meter_data")
    if not _close(ours.price_per_mwh, market.price_per_mwh, relative=Decimal(0), floor=PRICE_TOLERANCE):
        causes.append("price")
    if not causes and abs(ours.amount - market.amount) > MONEY_TOLERANCE:
        causes.append("rules")
    return tuple(causes)


DISPUTE_HEADER = [
    "event",
    "run_version",
    "interval_start",
    "minutes",
    "causes",
    "our_baseline_kwh",
    "market_baseline_kwh",
    "our_actual_kwh",
    "market_actual_kwh",
    "our_reduction_kwh",
    "market_reduction_kwh",
    "our_price_per_mwh",
    "market_price_per_mwh",
    "our_amount",
    "market_amount",
    "difference",
]


def _fmt(value: Decimal | None, places: str) -> str:
    return "" if value is None else str(value.quantize(Decimal(places)))


def dispute_rows(reconciliation: Reconciliation, zone: ZoneInfo) -> list[list[str]]:
    """The intervals that differ, both figures side by side and the cause(s): the report an analyst sends."""
    rows = []
    for line in reconciliation.differences:
        o, m = line.ours, line.market
        rows.append(
            [
                line.event_ref,
                "" if line.run_version is None else str(line.run_version),
                line.start.astimezone(zone).isoformat(),
                str(line.minutes),
                ";".join(line.causes),
                _fmt(o.baseline_kwh if o else None, "0.001"),
                _fmt(m.baseline_kwh if m else None, "0.001"),
                _fmt(o.actual_kwh if o else None, "0.001"),
                _fmt(m.actual_kwh if m else None, "0.001"),
                _fmt(o.reduction_kwh if o else None, "0.001"),
                _fmt(m.reduction_kwh if m else None, "0.001"),
                _fmt(o.price_per_mwh if o else None, "0.01"),
                _fmt(m.price_per_mwh if m else None, "0.01"),
                _fmt(o.amount if o else None, "0.01"),
                _fmt(m.amount if m else None, "0.01"),
                _fmt(line.difference, "0.01"),
            ]
        )
    return rows


def for_run(run: SettlementRun) -> list[Line]:
    """The latest imported market statement's lines for a run's event, reconciled: both figures on its statement.
    Empty when the market's statement has not been imported (or it is against a later version)."""
    latest = MarketStatement.objects.filter(intervals__event_id=run.event_id).order_by("-imported_at", "-pk").first()
    if latest is None:
        return []
    lines = [line for line in reconcile(latest).lines if line.event_id == run.event_id]
    return [line for line in lines if line.run_version == run.version]


def line_dict(line: Line) -> dict:
    """A line as the statement shows it: kWh to the Wh, prices and money to the cent."""

    def side(f: Figures | None) -> dict | None:
        if f is None:
            return None

        def q(value: Decimal | None, places: str) -> Decimal | None:
            return None if value is None else value.quantize(Decimal(places))

        return {
            "baseline_kwh": q(f.baseline_kwh, "0.001"),
            "actual_kwh": q(f.actual_kwh, "0.001"),
            "reduction_kwh": q(f.reduction_kwh, "0.001"),
            "price_per_mwh": q(f.price_per_mwh, "0.01"),
            "amount": q(f.amount, "0.01"),
        }

    return {
        "start": line.start,
        "minutes": line.minutes,
        "ours": side(line.ours),
        "market": side(line.market),
        "causes": list(line.causes),
        "difference": line.difference.quantize(Decimal("0.01")),
    }
