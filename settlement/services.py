"""Settlement runs: an event's measured performance and money, each run a new immutable version.

`settle_event` reads every participating site's meter (or, for a method that measures
devices at their own meter, every dispatched device's) over the baseline lookback in one
query, computes all the baselines in one call (settlement.baselines, the same code the
`baseline` command runs), prices each interval's reduction at its site's pricing node,
and writes the run: per site the intervals, baseline days and energy $, per customer the
payout, and for the resource the energy, capacity and penalty lines (settlement.payments,
rounded per settlement.money). A later run of the same event is a resettlement: a new
version with its difference to the previous one; no run is ever changed.
"""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from aggregator.core.errors import DomainError, Problem
from aggregator.reference import weather
from aggregator.reference.models import MeterKind, NetBenefitsPrice
from dispatch import selectors as dispatch_selectors
from dispatch.models import Allocation, DispatchEvent, EventState, EventTransition
from enrollment.models import Site, SiteOutage
from settlement import baselines, payments
from settlement.models import CustomerPayout, RetailEvent, SettlementRun, SettlementTerms, SiteSettlement
from settlement.money import cents

SIX = Decimal("0.000001")
PRICE = Decimal("0.0001")  # $/MWh as stored on the statement


class SettlementRefused(DomainError):
    status = 409


def lookback(method: str, params: dict | None) -> timedelta:
    """How far before an event a run reads: the method's look-back in calendar days (the program may set up to
    366), and a day for adjustment windows that begin before midnight (all a pre-event method needs)."""
    chosen = baselines.make_params(baselines.get_method(method), params)
    days = getattr(chosen, "lookback_days", 0)
    if getattr(chosen, "below_min_days", None) == "extend_lookback":
        days = chosen.max_lookback_days  # type: ignore[attr-defined]  # checked with the policy
    return timedelta(days=days + 1)


# What a run measures: each site dispatched in the event at its site meter, or (for a method
# that measures devices at their own meter) each dispatched device. Rows: (meter id, site,
# customer, pricing node, device or None).
_UNITS = {
    "site": """
SELECT DISTINCT s.id, s.id, s.customer_id, s.pricing_node, NULL::bigint
FROM dispatch_allocation a JOIN enrollment_device d ON d.id = a.device_id JOIN enrollment_site s ON s.id = d.site_id
WHERE a.event_id = %s AND EXISTS (SELECT 1 FROM unnest(a.kw) k WHERE k > 0)
ORDER BY s.id
""",
    "device": """
SELECT d.id, s.id, s.customer_id, s.pricing_node, d.id
FROM dispatch_allocation a JOIN enrollment_device d ON d.id = a.device_id JOIN enrollment_site s ON s.id = d.site_id
WHERE a.event_id = %s AND EXISTS (SELECT 1 FROM unnest(a.kw) k WHERE k > 0)
ORDER BY d.id
""",
}
_METER_KINDS = {"site": MeterKind.SITE, "device": MeterKind.DEVICE}
_READINGS = """
COPY (SELECT meter_id, array_agg(start), array_agg(coalesce(kwh::float8, 'NaN')), array_agg(interval_seconds),
             count(*), sum(revision)::int8, max(received_at)
      FROM settlement_reading WHERE meter_kind = {kind} AND meter_id = ANY({meters}) AND start >= {start} AND start < {end}
      GROUP BY meter_id) TO STDOUT (FORMAT BINARY)
"""
# One binary COPY row per site holding three arrays: a few thousand rows to walk in Python
# instead of millions, each array read by numpy in place. A timestamptz travels as
# microseconds since 2000-01-01 UTC; each site's readings are sorted by numpy. Each row also carries the
# site's count, revisions and latest arrival, which sum to the run's fingerprint (the same figures as
# _FINGERPRINT, from the same pass: a second pass over the readings was a fifth of reading them).
_PG_EPOCH = 946_684_800
_COPY_HEADER = 19
_ELEMENTS = {8: np.dtype([("length", ">i4"), ("value", ">i8")]), 4: np.dtype([("length", ">i4"), ("value", ">i4")])}
_FLOATS = np.dtype([("length", ">i4"), ("value", ">f8")])


def _array(buffer: memoryview, at: int, element: np.dtype) -> tuple[np.ndarray, int]:
    """A one-dimensional binary array field at `at` (after its length): its values and the offset after it."""
    ndim = int.from_bytes(buffer[at : at + 4], "big")
    if ndim == 0:
        return np.zeros(0, dtype=element["value"]), at + 12
    count = int.from_bytes(buffer[at + 12 : at + 16], "big")
    body = at + 20
    values = np.frombuffer(buffer[body : body + count * element.itemsize], dtype=element)["value"]
    return values, body + count * element.itemsize


_FINGERPRINT = """
SELECT count(*), coalesce(sum(revision), 0), max(received_at) FROM settlement_reading
WHERE meter_kind = %s AND meter_id = ANY(%s) AND start >= %s AND start < %s
"""


_RETAIL_FINGERPRINT = """
SELECT count(*), max(imported_at) FROM settlement_retailevent WHERE site_id = ANY(%s) AND start < %s AND "end" > %s
"""


def _units(event_id: int, meter: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(_UNITS[meter], [event_id])
        return cursor.fetchall()


def _fingerprint(kind: MeterKind, meter_ids: list[int], start, end, site_ids: list[int] | None = None) -> str:
    """What a run stood on, in one string: its readings (count, revisions, latest arrival) and, when there are
    any, the sites' retail event days (a utility's list imported later changes the baseline days)."""
    with connection.cursor() as cursor:
        cursor.execute(_FINGERPRINT, [int(kind), meter_ids, start, end])
        count, revisions, latest = cursor.fetchone()
    return _fingerprint_of(count, revisions, latest, _retail_fingerprint(site_ids, start, end))


def _retail_fingerprint(site_ids: list[int] | None, start, end) -> str:
    if not site_ids:
        return ""
    with connection.cursor() as cursor:
        cursor.execute(_RETAIL_FINGERPRINT, [site_ids, end, start])
        events, imported = cursor.fetchone()
    return f"|retail:{events}:{imported.isoformat()}" if events else ""


def _fingerprint_of(count: int, revisions: int, latest: datetime | None, retail: str) -> str:
    return f"{count}:{revisions}:{latest.isoformat() if latest else ''}{retail}"


def _readings(kind: MeterKind, meter_ids: list[int], start, end, site_ids: list[int] | None = None) -> tuple[dict, str]:
    """Meter -> IntervalReadings, and a fingerprint of what was read: late data changes the count, a
    correction the revisions and the latest arrival.

    Millions of readings come over as one binary COPY of per-site arrays parsed by numpy.
    """
    from psycopg import sql

    query = sql.SQL(_READINGS).format(
        kind=sql.Literal(int(kind)), meters=sql.Literal(meter_ids), start=sql.Literal(start), end=sql.Literal(end)
    )
    buffer = bytearray()
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(query) as copy:
        for chunk in copy:
            buffer += chunk
    view, at, readings = memoryview(buffer), _COPY_HEADER, {}
    count = revisions = latest = 0
    while buffer and int.from_bytes(view[at : at + 2], "big", signed=True) != -1:
        site = int.from_bytes(view[at + 6 : at + 14], "big")
        micros, at = _array(view, at + 18, _ELEMENTS[8])
        kwh, at = _array(view, at + 4, _FLOATS)
        seconds, at = _array(view, at + 4, _ELEMENTS[4])
        # Three int8 fields (a timestamptz is one too), each after its 4-byte length.
        count += int.from_bytes(view[at + 4 : at + 12], "big", signed=True)
        revisions += int.from_bytes(view[at + 16 : at + 24], "big", signed=True)
        latest = max(latest, int.from_bytes(view[at + 28 : at + 36], "big", signed=True))
        at += 36
        order = np.argsort(micros, kind="stable")
        readings[site] = baselines.IntervalReadings(
            starts=micros[order] // 1_000_000 + _PG_EPOCH,
            kwh=kwh[order].astype(np.float64),
            interval_seconds=seconds[order].astype(np.int64),
        )
    arrived = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=latest) if count else None
    return readings, _fingerprint_of(count, revisions, arrived, _retail_fingerprint(site_ids, start, end))


# Events that asked devices for kW: running or done, or cancelled after they started.
_RAN = Q(state__in=[EventState.ACTIVE, EventState.COMPLETED]) | Q(
    state=EventState.CANCELLED,
    pk__in=EventTransition.objects.filter(to_state=EventState.CANCELLED, at__gt=F("event__start")).values("event_id"),
)


def _other_event_days(event: DispatchEvent, zone: ZoneInfo, since: timedelta) -> frozenset:
    """Local days of the resource's other events in the lookback: never baseline days."""
    others = DispatchEvent.objects.filter(
        _RAN,
        resource=event.resource,
        start__gte=event.start - since,
        start__lt=event.start,
    ).exclude(pk=event.pk)
    return frozenset(e.start.astimezone(zone).date() for e in others)


# The sites' days with any dispatch, in any program and resource: a device of the site was allocated kW.
_SITE_DISPATCH = """
SELECT DISTINCT d.site_id, e.start, e."end"
FROM dispatch_allocation a
JOIN dispatch_dispatchevent e ON e.id = a.event_id
JOIN enrollment_device d ON d.id = a.device_id
WHERE d.site_id = ANY(%s) AND e.id <> %s
  AND (e.state IN ('active', 'completed') OR e.state = 'cancelled' AND EXISTS (
       SELECT 1 FROM dispatch_eventtransition t WHERE t.event_id = e.id AND t.to_state = 'cancelled' AND t.at > e.start))
  AND e.start >= %s AND e.start < %s AND EXISTS (SELECT 1 FROM unnest(a.kw) k WHERE k > 0)
"""


def _site_dispatch_days(
    event: DispatchEvent | None, site_ids: set[int], zone: ZoneInfo, since: timedelta, until: datetime | None = None
) -> dict:
    """Site -> the local days of the look-back on which any of its devices was dispatched (never baseline days);
    without an event, of [until - since, until)."""
    end = event.start if event is not None else until
    with connection.cursor() as cursor:
        cursor.execute(_SITE_DISPATCH, [list(site_ids), event.pk if event else 0, end - since, end])
        rows = cursor.fetchall()
    days: dict[int, set] = defaultdict(set)
    for site_id, start, end in rows:
        days[site_id] |= {start.astimezone(zone).date(), (end - timedelta(seconds=1)).astimezone(zone).date()}
    return {site: frozenset(d) for site, d in days.items()}


def _event_day_reason(day: date, why: str, dispatched: frozenset, retail: frozenset) -> str:
    """Which kind of event day left a baseline day out: a dispatch, a retail event or an outage."""
    if why != "event_day" or day in dispatched:
        return why
    return "retail_event_day" if day in retail else "outage_day"


def _unit_temperatures(units: list[tuple], start: datetime, end: datetime) -> dict:
    """Meter -> its site's weather station temperatures over [start, end), for weather-driven baselines."""
    stations = dict(
        Site.objects.filter(pk__in={u[1] for u in units})
        .exclude(weather_station="")
        .values_list("pk", "weather_station")
    )
    series = weather.temperatures(set(stations.values()), start, end)
    return {u[0]: series[stations[u[1]]] for u in units if stations.get(u[1]) in series}


def _retail_event_days(site_ids: set[int], zone: ZoneInfo, start: datetime, end: datetime) -> dict[int, frozenset]:
    """Site -> the local days in [start, end) of its retail demand-response events (never baseline days)."""
    periods: dict[int, list[tuple]] = defaultdict(list)
    for site_id, a, b in RetailEvent.objects.filter(site_id__in=site_ids, start__lt=end, end__gt=start).values_list(
        "site_id", "start", "end"
    ):
        periods[site_id].append((a, b))
    return {site: _local_days(p, zone) for site, p in periods.items()}


def site_history(site_id: int, start: datetime, end: datetime) -> tuple[baselines.IntervalReadings, frozenset[date]]:
    """A site's meter readings in [start, end) and the local days there that are never baseline days (any
    dispatch of its devices, its retail events): what `baseline_accuracy` tests a method on."""
    site = Site.objects.select_related("market").get(pk=site_id)
    zone = ZoneInfo(site.market.time_zone)
    readings, _ = _readings(MeterKind.SITE, [site_id], start, end)
    dispatched = _site_dispatch_days(None, {site_id}, zone, end - start, end)
    retail = _retail_event_days({site_id}, zone, start, end)
    days = dispatched.get(site_id, frozenset()) | retail.get(site_id, frozenset())
    empty = baselines.IntervalReadings(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    return readings.get(site_id, empty), days


def _outages(site_ids: set[int], start, end) -> dict[int, list[tuple]]:
    """Site -> its grid outage periods overlapping [start, end) (an open one runs to `end`)."""

    out: dict[int, list[tuple]] = defaultdict(list)
    for site_id, a, b in (
        SiteOutage.objects.filter(site_id__in=site_ids, start__lt=end)
        .filter(Q(end__isnull=True) | Q(end__gt=start))
        .values_list("site_id", "start", "end")
    ):
        out[site_id].append((a, b or end))
    return dict(out)


def _local_days(periods, zone: ZoneInfo) -> frozenset:
    days = set()
    for a, b in periods:
        day, last = a.astimezone(zone).date(), (b - timedelta(microseconds=1)).astimezone(zone).date()
        while day <= last:
            days.add(day)
            day += timedelta(days=1)
    return frozenset(days)


def _in_outage(periods, start, end) -> bool:
    return bool(periods) and any(a < end and b > start for a, b in periods)


def _excused_kwh(event: DispatchEvent, intervals, outages: dict[int, list[tuple]]) -> Decimal:
    """The allocated kWh of devices at sites in an outage, over the event intervals the outage overlaps."""

    excused = Decimal(0)
    for kw, site_id in Allocation.objects.filter(event=event, device__site_id__in=list(outages)).values_list(
        "kw", "device__site_id"
    ):
        for n, interval in enumerate(intervals):
            if n < len(kw) and _in_outage(outages[site_id], interval.start, interval.end):
                excused += Decimal(repr(float(kw[n]))) * Decimal((interval.end - interval.start).total_seconds()) / 3600
    return excused


def _prices(market_id: int, nodes: set[str], start, end) -> dict[str, tuple[np.ndarray, np.ndarray, list]]:
    """Node -> (interval starts in epoch seconds, ends, $/MWh) for lookups by searchsorted."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT node, extract(epoch FROM start)::bigint, interval_minutes, price_per_mwh FROM settlement_energyprice
                          WHERE market_id = %s AND node = ANY(%s) AND start >= %s AND start < %s ORDER BY node, start""",
            [market_id, list(nodes), start - timedelta(hours=1), end],
        )
        rows = cursor.fetchall()
    grouped: dict[str, list] = defaultdict(list)
    for node, epoch, minutes, price in rows:
        grouped[node].append((epoch, epoch + minutes * 60, price))
    return {
        node: (np.array([r[0] for r in v]), np.array([r[1] for r in v]), [r[2] for r in v])
        for node, v in grouped.items()
    }


def _price_over(table, start: int, end: int) -> Decimal | None:
    """The time-weighted mean of the market's prices inside [start, end) (epoch seconds): an hourly meter
    interval under 5-minute prices is paid at the mean of its twelve, not the first. None unless the prices
    cover the whole interval."""
    if table is None:
        return None
    starts, ends, prices = table
    first = max(int(np.searchsorted(starts, start, side="right")) - 1, 0)
    weighted, covered = Decimal(0), 0
    for i in range(first, len(starts)):
        if starts[i] >= end:
            break
        overlap = min(int(ends[i]), end) - max(int(starts[i]), start)
        if overlap > 0:
            weighted += prices[i] * overlap
            covered += overlap
    if covered < end - start:
        return None
    return (weighted / covered).quantize(PRICE, rounding=ROUND_HALF_UP)


def _net_benefits(market_id: int, months: list[date]) -> dict[date, Decimal]:
    """Local month (its first day) -> the market's net-benefits price, for the months the event touches."""
    return dict(
        NetBenefitsPrice.objects.filter(market_id=market_id, month__in=months).values_list("month", "price_per_mwh")
    )


def check_settleable(event: DispatchEvent, *, now: datetime) -> tuple[SettlementTerms, datetime]:
    """(The event's program terms, the end of what it asked), or SettlementRefused: only an ended event of a program
    with terms is settled. An event cancelled after it started ended then (dispatch.selectors.served_end)."""
    end = dispatch_selectors.served_end(event)
    if end is None and event.state == EventState.CANCELLED:
        raise SettlementRefused(
            Problem("not_started", "The event was cancelled before it started: there is nothing to settle.", "event")
        )
    if end is None or end > now:
        raise SettlementRefused(Problem("not_ended", "Only an event that has ended can be settled.", "event"))
    terms = SettlementTerms.objects.filter(program_id=event.resource.program_id).first()
    if terms is None:
        raise SettlementRefused(
            Problem("no_terms", f"Program {event.resource.program} has no settlement terms.", "event")
        )
    return terms, end


PROGRESS_EVERY = 500  # sites between two progress reports


def settle_event(*, event: DispatchEvent, by: str, now: datetime | None = None, progress=None) -> SettlementRun:
    """Settle an event: a new run. `progress(sites_done, sites, stage)` is told as the sites are settled."""
    now = now or timezone.now()
    with transaction.atomic():
        event = (
            DispatchEvent.objects.select_for_update()
            .select_related("resource__market", "resource__program")
            .get(pk=event.pk)
        )
        terms, end = check_settleable(event, now=now)
        ended_early = end if end < event.end else None
        market = event.resource.market
        zone = ZoneInfo(market.time_zone)
        meter = baselines.get_method(terms.baseline_method).meter
        since = lookback(terms.baseline_method, terms.baseline_params)
        units = _units(event.pk, meter)
        readings, fingerprint = _readings(
            _METER_KINDS[meter], [u[0] for u in units], event.start - since, end, sorted({u[1] for u in units})
        )
        outages = _outages({u[1] for u in units}, event.start - since, end)
        other_events = _other_event_days(event, zone, since)
        outage_days = (
            {site: _local_days(periods, zone) for site, periods in outages.items()} if terms.exclude_outage_days else {}
        )
        dispatched = _site_dispatch_days(event, {u[1] for u in units}, zone, since)
        retail = _retail_event_days({u[1] for u in units}, zone, event.start - since, event.start)
        event_days = {
            u[0]: other_events
            | dispatched.get(u[1], frozenset())
            | retail.get(u[1], frozenset())
            | outage_days.get(u[1], frozenset())
            for u in units
        }
        results, errors = baselines.compute_baselines(
            method=terms.baseline_method,
            sites=readings,
            event_start=event.start,
            event_end=end,
            time_zone=market.time_zone,
            market=market.code,
            event_days=event_days,
            params=terms.baseline_params,
            temperatures=_unit_temperatures(units, event.start - since, end)
            if baselines.get_method(terms.baseline_method).uses_weather
            else None,
        )
        prices = _prices(market.pk, {u[3] for u in units}, event.start, end)
        months = _months(zone, event.start, end)
        thresholds = _net_benefits(market.pk, months) if terms.net_benefits_test else {}
        # Export beyond the site's own load is delivery only where the program's participation model allows
        # injection with its own metering; a device's own meter measures its output either way.
        stop_at_zero_load = (
            meter == "site" and terms.participation_model == SettlementTerms.ParticipationModel.LOAD_REDUCTION
        )
        below_threshold = 0
        interval_prices: dict[tuple[str, int, int], Decimal | None] = {}

        rows, delivered_by_customer, energy = [], defaultdict(Decimal), Decimal(0)
        for done, (meter_id, site_id, customer_id, node, device_id) in enumerate(units):
            if progress and done % PROGRESS_EVERY == 0:
                progress(done, len(units), "settling sites")
            result = results.get(meter_id)
            if result is None:
                flags = (
                    ["no_readings"] if meter_id not in readings else [f"refused:{errors[meter_id].problems[0].code}"]
                )
                rows.append(
                    SiteSettlement(
                        site_id=site_id,
                        device_id=device_id,
                        customer_id=customer_id,
                        starts=[],
                        baseline_kw=[],
                        actual_kw=[],
                        reduction_kwh=[],
                        price_per_mwh=[],
                        energy=Decimal(0),
                        flags=flags,
                    )
                )
                continue
            hours = Decimal(result.interval_minutes) / 60
            reductions, site_prices, paid_prices, excused_here, below_here = [], [], [], False, False
            site_reduction_kw = result.reduction_kw
            exported = bool(stop_at_zero_load and np.any(result.actual_kw < 0))
            if exported:
                site_reduction_kw = result.baseline_kw - np.maximum(result.actual_kw, 0.0)
            seconds = int(result.interval_minutes) * 60
            for start, reduction_kw in zip(result.starts, site_reduction_kw):
                kwh = Decimal(0) if np.isnan(reduction_kw) else Decimal(repr(float(reduction_kw))) * hours
                if terms.excuse_outage_intervals and _in_outage(
                    outages.get(site_id), start, start + timedelta(hours=float(hours))
                ):
                    kwh, excused_here = Decimal(0), True  # the site was off the grid: neither delivery nor shortfall
                reductions.append(
                    payments.reduction_kwh(kwh, Decimal(0), net_negatives=terms.net_negatives).quantize(SIX)
                )
                key = (node, int(start.timestamp()), seconds)
                if key not in interval_prices:  # every site at a node shares its interval's price
                    interval_prices[key] = _price_over(prices.get(node), key[1], key[1] + seconds)
                price = interval_prices[key]
                site_prices.append(price)
                threshold = thresholds.get(start.astimezone(zone).date().replace(day=1))
                if price is not None and threshold is not None and price < threshold:
                    price = Decimal(0)  # Order 745: below the month's net-benefits price a reduction earns no energy
                    below_threshold += 1
                    below_here = True
                paid_prices.append(price)
            priced = [p if p is not None else Decimal(0) for p in paid_prices]
            site_energy = payments.energy_payment(reductions, priced)
            energy += site_energy
            delivered_by_customer[customer_id] += sum(reductions, Decimal(0))
            flags = (
                sorted(result.flags)
                + (["unpriced_intervals"] if None in site_prices else [])
                + (["below_net_benefits_price"] if below_here else [])
                + (["export_not_delivery"] if exported else [])
                + (["outage_excused"] if excused_here else [])
            )
            skipped = {
                d.isoformat(): _event_day_reason(
                    d, why, other_events | dispatched.get(site_id, frozenset()), retail.get(site_id, frozenset())
                )
                for d, why in (result.skipped or {}).items()
            }
            rows.append(
                SiteSettlement(
                    site_id=site_id,
                    device_id=device_id,
                    customer_id=customer_id,
                    starts=list(result.starts),
                    baseline_kw=[None if np.isnan(x) else round(float(x), 6) for x in result.baseline_kw],
                    actual_kw=[None if np.isnan(x) else round(float(x), 6) for x in result.actual_kw],
                    reduction_kwh=reductions,
                    price_per_mwh=site_prices,
                    energy=site_energy.quantize(Decimal("0.00000001")),
                    days_used=list(result.days_used),
                    days_skipped=skipped,
                    adjustment={
                        "kind": result.adjustment.kind,
                        "value": result.adjustment.value,
                        "capped": result.adjustment.capped,
                        "reason": result.adjustment.reason,
                    },
                    flags=flags,
                )
            )

        # What it asked, until it ended (an event cancelled while it ran asked nothing after that).
        intervals = [i for i in event.intervals.order_by("start") if i.start < end]
        committed_kw = max((i.target_kw for i in intervals), default=Decimal(0))
        committed_kwh = sum(
            (i.target_kw * Decimal((min(i.end, end) - i.start).total_seconds()) / 3600 for i in intervals),
            Decimal(0),
        )
        delivered = sum(delivered_by_customer.values(), Decimal(0))
        excused = _excused_kwh(event, intervals, outages) if terms.excuse_outage_intervals and outages else Decimal(0)
        factor = payments.performance_factor(
            delivered, max(committed_kwh - excused, Decimal(0)), cap_at_one=terms.cap_factor_at_one
        )
        capacity = cents(payments.capacity_payment(committed_kw, terms.capacity_rate_per_kw, factor))
        penalty = cents(payments.shortfall_penalty(committed_kw, terms.penalty_per_kw, factor))
        net = cents(energy) + capacity - penalty
        payouts = payments.customer_payouts(
            rule=terms.sharing_rule,
            value=terms.sharing_value,
            delivered_kwh=dict(delivered_by_customer),
            resource_net=net,
            fee_pct=terms.fee_pct,
        )

        previous = SettlementRun.objects.filter(event=event).order_by("-version").first()
        run = SettlementRun.objects.create(
            event=event,
            version=(previous.version + 1) if previous else 1,
            kind=SettlementRun.Kind.RESETTLEMENT if previous else SettlementRun.Kind.INITIAL,
            created_at=now,
            created_by=by,
            method=terms.baseline_method,
            fingerprint=fingerprint,
            sites=len({u[1] for u in units}),
            delivered_kwh=delivered,
            committed_kwh=committed_kwh,
            performance_factor=factor,
            energy=cents(energy),
            capacity=capacity,
            penalty=penalty,
            net=net,
            excused_kwh=excused.quantize(SIX),
            rules=_rules(
                terms,
                method_params=baselines.make_params(baselines.get_method(terms.baseline_method), terms.baseline_params),
                thresholds=thresholds,
                months=months,
                below_threshold=below_threshold,
                short_sites=sum(1 for row in rows if "below_min_days" in row.flags),
                ended_early=ended_early,
            ),
        )
        for row in rows:
            row.run = run
        SiteSettlement.objects.bulk_create(rows, batch_size=2000)
        CustomerPayout.objects.bulk_create(
            [
                CustomerPayout(
                    run=run,
                    customer_id=customer,
                    delivered_kwh=delivered_by_customer[customer],
                    gross=p.gross,
                    fee=p.fee,
                    net=p.net,
                )
                for customer, p in payouts.items()
            ]
        )
        if previous:
            run.difference = _difference(previous, run)
            run.save(update_fields=["difference"])
    return run


def _months(zone: ZoneInfo, start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(zone).date().replace(day=1)
    last = (end - timedelta(seconds=1)).astimezone(zone).date().replace(day=1)
    return sorted({first, last})


def _rules(
    terms: SettlementTerms,
    *,
    method_params: baselines.BaselineParams,
    thresholds: dict[date, Decimal],
    months: list[date],
    below_threshold: int,
    short_sites: int,
    ended_early: datetime | None = None,
) -> list[dict]:
    """The rules a run applied, in the words its statement shows (code, text)."""
    days = getattr(method_params, "lookback_days", None)
    window = f"like days from the {days} calendar days before the event" if days else "the load just before the event"
    floor = (
        "a negative adjusted baseline is floored at 0 (the program's rule)"
        if method_params.floor_at_zero
        else "a negative adjusted baseline is kept, not floored"
    )
    load_reduction = terms.participation_model == SettlementTerms.ParticipationModel.LOAD_REDUCTION
    rules = [
        {"code": "baseline", "text": f"Baseline by {terms.baseline_method} from {window}; {floor}."},
        {
            "code": "price",
            "text": "Each interval is paid at the time-weighted mean of the market's prices at the site's "
            "pricing node inside it.",
        },
        {
            "code": "participation_model",
            "text": "Load reduction: a site's delivery stops at zero net load; export is not delivery."
            if load_reduction
            else "Injection with its own metering: export beyond the site's load counts as delivery.",
        },
        {
            "code": "net_negatives",
            "text": "A negative interval reduction is netted against the others."
            if terms.net_negatives
            else "A negative interval reduction counts 0.",
        },
    ]
    policy = getattr(method_params, "below_min_days", None)
    if policy is not None:
        p = method_params
        least = f"{p.weekday_min_days} weekdays ({p.weekend_min_days} weekend or holiday days)"  # type: ignore[attr-defined]
        below = {
            "review": "the site has no baseline and is not paid: it is left for review",
            "event_days": "the most recent event days make up the minimum",
            "extend_lookback": f"like days back to {getattr(p, 'max_lookback_days', None)} days before the event "
            "make up the minimum",
            "fallback": f"the baseline is {getattr(p, 'fallback_method', None)}'s",
        }[policy]
        rules.append({"code": "min_days", "text": f"A baseline rests on at least {least}; with fewer, {below}."})
        if short_sites:
            rules.append(
                {
                    "code": "review",
                    "text": f"{short_sites} site(s) had fewer baseline days than the minimum (flag below_min_days)"
                    + (
                        "; they are not paid in this run: review their meter data and resettle."
                        if policy != "fallback"
                        else "; their baseline is the fallback method's."
                    ),
                }
            )
    if ended_early is not None:
        rules.append(
            {
                "code": "ended_early",
                "text": f"The event was cancelled while it ran, at {ended_early.isoformat()}: it is settled for what "
                "it asked until then (delivery, committed kWh and the intervals paid stop there).",
            }
        )
    if not terms.net_benefits_test:
        rules.append({"code": "net_benefits", "text": "No net-benefits test in this program's terms."})
        return rules
    for month in months:
        if month in thresholds:
            text = (
                f"Energy paid only in intervals priced at or above the net-benefits price of {thresholds[month]} "
                f"$/MWh for {month:%Y-%m} (FERC Order 745); {below_threshold} site interval(s) below it earned none."
            )
            rules.append({"code": "net_benefits", "text": text})
        else:
            text = (
                f"No net-benefits price on file for {month:%Y-%m}: the test was not applied; import it "
                "(manage.py import_net_benefits) and resettle."
            )
            rules.append({"code": "net_benefits_missing", "text": text})
    return rules


def _run_lookback(run: SettlementRun) -> timedelta:
    terms = SettlementTerms.objects.filter(program_id=run.event.resource.program_id).first()
    return lookback(run.method, terms.baseline_params if terms else None)


def _difference(old: SettlementRun, new: SettlementRun) -> dict:
    lines = {
        name: str(getattr(new, name) - getattr(old, name))
        for name in ("energy", "capacity", "penalty", "net", "delivered_kwh")
        if getattr(new, name) != getattr(old, name)
    }
    before = dict(old.payouts.values_list("customer_id", "net"))
    after = dict(new.payouts.values_list("customer_id", "net"))
    customers = {
        str(c): str(after.get(c, Decimal(0)) - before.get(c, Decimal(0)))
        for c in sorted(set(before) | set(after))
        if after.get(c) != before.get(c)
    }
    return {"from_version": old.version, "lines": lines, "customers": customers}


def needs_resettlement(run: SettlementRun) -> bool:
    """Whether what a run used has changed since: late or corrected readings, or retail event days imported."""
    meter = baselines.get_method(run.method).meter
    units = _units(run.event_id, meter)
    # The fingerprint alone (one aggregate), not the readings: the hourly job asks this of every recent event.
    return (
        _fingerprint(
            _METER_KINDS[meter],
            [u[0] for u in units],
            run.event.start - _run_lookback(run),
            run.event.end,
            sorted({u[1] for u in units}),
        )
        != run.fingerprint
    )


def due(*, now: datetime) -> tuple[list[int], list[int]]:
    """(events due their initial run, events whose readings changed since their last run)."""
    from django.conf import settings
    from django.db.models import Exists, OuterRef

    deadline = now - timedelta(days=settings.SETTLEMENT_METER_DATA_DAYS)
    # Completed events, and those cancelled while they ran (settled for what they asked until then).
    stopped = EventTransition.objects.filter(
        event=OuterRef("pk"), to_state=EventState.CANCELLED, at__gt=OuterRef("start"), at__lte=deadline
    )
    ran = Q(state=EventState.COMPLETED) | Q(state=EventState.CANCELLED, start__lte=deadline) & Exists(stopped)
    with_terms = DispatchEvent.objects.filter(ran, resource__program__settlement_terms__isnull=False)
    runs = SettlementRun.objects.filter(event=OuterRef("pk"))
    initial = list(
        with_terms.filter(Q(end__lte=deadline) | Q(state=EventState.CANCELLED))
        .exclude(Exists(runs))
        .values_list("pk", flat=True)
    )
    recent = with_terms.filter(end__gt=now - timedelta(days=settings.SETTLEMENT_RESETTLE_DAYS)).filter(Exists(runs))
    changed = [
        event_id
        for event_id in recent.values_list("pk", flat=True)
        if needs_resettlement(SettlementRun.objects.filter(event_id=event_id).order_by("-version").first())
    ]
    return initial, changed
