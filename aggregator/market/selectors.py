"""Reads for a market's day as the console's Market page shows it: what each resource can deliver tomorrow, the
offers and their deadlines, what the market awarded of them, today's telemetry against the award, and the revenue
the awards earned. Each is a few set-based queries for the whole market (or one resource), never one per row.

Days are the market's local days (23 or 25 hours on DST days), intervals half-open [start, end), instants UTC.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import OuterRef, Subquery

from aggregator.aggregation.models import ResourceState, VirtualResource
from aggregator.market.models import Award, Forecast, Offer, OfferInterval
from aggregator.market.offers import deadlines
from aggregator.reference.models import Market

OFFERING_STATES = (ResourceState.REGISTERED, ResourceState.ACTIVE)


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def local_day(market: Market, day: date) -> tuple[datetime, datetime]:
    """[start, end) of a market-local day, in UTC."""
    return deadlines.day_ahead_window(day, market_time_zone=market.time_zone)


def today_of(market: Market, now: datetime) -> date:
    return deadlines.operating_day_of(now, market_time_zone=market.time_zone)


# --- markets and resources -------------------------------------------------------------------------------------


def markets_with_resources() -> list[Market]:
    """Markets with at least one registered (or active) resource, by code."""
    return list(Market.objects.filter(virtual_resources__state__in=OFFERING_STATES).distinct().order_by("code"))


def market_resources(market: Market) -> list[VirtualResource]:
    """The market's registered and active resources (the ones that forecast, offer and stream), by name."""
    return list(
        VirtualResource.objects.filter(market=market, state__in=OFFERING_STATES)
        .select_related("program")
        .order_by("name", "pk")
    )


# --- tomorrow's forecast -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastHour:
    start: datetime
    expected_kw: float | None
    p10_kw: float | None
    p50_kw: float | None
    p90_kw: float | None


@dataclass(frozen=True)
class DayForecast:
    """A resource's forecast over one local day, an hour a row (None where the forecast does not reach)."""

    forecast: Forecast
    day: date
    hours: list[ForecastHour]


_LATEST_COVERING = """
SELECT DISTINCT ON (resource_id) id
FROM market_forecast
WHERE resource_id = ANY(%(resources)s) AND kind = %(kind)s AND issued_at <= %(now)s
  AND start < %(end)s
  AND start + make_interval(mins => interval_minutes * cardinality(p50_kw)) > %(start)s
ORDER BY resource_id, issued_at DESC, id DESC
"""


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _hours_of(forecast: Forecast, starts: list[datetime]) -> list[ForecastHour]:
    """Each hour's values: the mean of the forecast steps that start in it (one step for an hourly forecast)."""
    step = timedelta(minutes=forecast.interval_minutes)
    by_hour: dict[datetime, list[int]] = defaultdict(list)
    hour = timedelta(hours=1)
    for i in range(len(forecast.p50_kw)):
        at = forecast.start + i * step
        offset = (at - starts[0]) // hour if starts else -1
        if 0 <= offset < len(starts):
            by_hour[starts[offset]].append(i)
    rows = []
    for start in starts:
        picked = by_hour.get(start, [])
        rows.append(
            ForecastHour(
                start=start,
                expected_kw=_mean([forecast.expected_kw[i] for i in picked]),
                p10_kw=_mean([forecast.p10_kw[i] for i in picked]),
                p50_kw=_mean([forecast.p50_kw[i] for i in picked]),
                p90_kw=_mean([forecast.p90_kw[i] for i in picked]),
            )
        )
    return rows


def day_forecasts(*, market: Market, resource_ids: list[int], day: date, now: datetime) -> dict[int, DayForecast]:
    """Each resource's latest hourly forecast issued by `now` that reaches into the market's local `day` (two
    queries for all resources), sliced to the day's hours (23, 24 or 25)."""
    start, end = local_day(market, day)
    ids = [
        row[0]
        for row in _rows(
            _LATEST_COVERING,
            {"resources": list(resource_ids), "kind": Forecast.Kind.HOURLY, "now": now, "start": start, "end": end},
        )
    ]
    starts = deadlines.interval_starts(start, end, 60)
    return {
        f.resource_id: DayForecast(forecast=f, day=day, hours=_hours_of(f, starts))
        for f in Forecast.objects.filter(pk__in=ids)
    }


# --- offers ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferVersion:
    """The latest version of a resource's offer for a window, with its deadline countdown and its award, if any."""

    offer: Offer
    seconds_left: int
    award_ref: str | None
    event_id: int | None
    intervals: list[OfferInterval] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.seconds_left > 0


def latest_offers(
    *,
    market: Market,
    now: datetime,
    since: datetime,
    resource_ids: list[int] | None = None,
    with_intervals: bool = False,
    limit: int = 300,
) -> list[OfferVersion]:
    """The latest version per (resource, market kind, window) of the market's offers whose window ends after
    `since`, soonest window first, each with the seconds left to its deadline at `now` (negative once passed) and
    the latest award of that version. Three queries at most (offers, and their intervals when asked)."""
    latest_award = Award.objects.filter(offer=OuterRef("pk")).order_by("-received_at", "-pk")
    rows = Offer.objects.filter(resource__market=market, window_end__gt=since)
    if resource_ids is not None:
        rows = rows.filter(resource_id__in=resource_ids)
    ids = rows.order_by("resource_id", "market_kind", "window_start", "-version").distinct(
        "resource_id", "market_kind", "window_start"
    )
    offers = (
        Offer.objects.filter(pk__in=ids.values("pk"))
        .select_related("resource")
        .annotate(
            award_ref=Subquery(latest_award.values("award_ref")[:1]),
            award_event_id=Subquery(latest_award.values("event_id")[:1]),
        )
        .order_by("window_start", "market_kind", "resource__name", "resource_id")[:limit]
    )
    if with_intervals:
        offers = offers.prefetch_related("intervals")
    return [
        OfferVersion(
            offer=o,
            seconds_left=int((o.deadline - now).total_seconds()),
            award_ref=o.award_ref,
            event_id=o.award_event_id,
            intervals=list(o.intervals.all()) if with_intervals else [],
        )
        for o in offers
    ]


# --- awards against offers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwardedInterval:
    start: datetime
    end: datetime
    offered_min_kw: Decimal
    offered_max_kw: Decimal
    awarded_kw: Decimal | None
    price_per_mwh: Decimal | None
    award_ref: str | None


_AWARDED = """
SELECT oi.start, oi.min_kw, oi.max_kw, a.kw, a.price_per_mwh, a.award_ref
FROM market_offerinterval oi
LEFT JOIN LATERAL (
    SELECT ai.kw, ai.price_per_mwh, aw.award_ref
    FROM market_awardinterval ai JOIN market_award aw ON aw.id = ai.award_id
    WHERE aw.offer_id = oi.offer_id AND ai.start = oi.start
    ORDER BY aw.received_at DESC, aw.id DESC
    LIMIT 1
) a ON true
WHERE oi.offer_id = %(offer)s
ORDER BY oi.start
"""


def awards_vs_offer(*, offer: Offer) -> list[AwardedInterval]:
    """Per interval of the offer: what it offered (min and max kW) and what the market awarded of it (kW and the
    clearing price, from the latest award naming the interval; None where no award did). One query."""
    step = timedelta(minutes=offer.interval_minutes)
    return [
        AwardedInterval(start, start + step, min_kw, max_kw, kw, price, ref)
        for start, min_kw, max_kw, kw, price, ref in _rows(_AWARDED, {"offer": offer.pk})
    ]


def awards_of(*, offer: Offer) -> list[Award]:
    return list(Award.objects.filter(offer=offer).select_related("event").order_by("-received_at", "-pk"))


# --- today's telemetry against the award --------------------------------------------------------------------------


@dataclass(frozen=True)
class TelemetryBin:
    """One bin of the day: the mean of the resource's telemetry samples in it, how many members reported (fewest
    and most, of how many expected), the samples' quality, and the kW awarded for it (None where no award)."""

    start: datetime
    end: datetime
    samples: int
    kw: float | None
    reporting_min: int | None
    reporting_max: int | None
    expected: int | None
    good: int
    poor: int
    none: int
    awarded_kw: Decimal | None

    @property
    def quality(self) -> str | None:
        """The worst quality of the bin's samples (none, poor, good), None without samples."""
        if not self.samples:
            return None
        return "none" if self.none else "poor" if self.poor else "good"


_TELEMETRY = """
WITH bins AS (
    SELECT b AS start, b + %(step)s AS "end"
    FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - %(step)s, %(step)s) b
), samples AS (
    SELECT bins.start, count(s.id) AS n, sum(s.kw) AS kw, min(s.devices_reporting) AS rmin,
           max(s.devices_reporting) AS rmax, max(s.devices_expected) AS expected,
           count(*) FILTER (WHERE s.quality = 'good') AS good, count(*) FILTER (WHERE s.quality = 'poor') AS poor,
           count(*) FILTER (WHERE s.quality = 'none') AS none
    FROM bins JOIN market_telemetrysample s
      ON s.resource_id = %(resource)s AND s.at >= bins.start AND s.at < bins."end"
    GROUP BY bins.start
)
SELECT bins.start, bins."end", coalesce(samples.n, 0), samples.kw, samples.rmin, samples.rmax, samples.expected,
       coalesce(samples.good, 0), coalesce(samples.poor, 0), coalesce(samples.none, 0), awarded.kw
FROM bins
LEFT JOIN samples ON samples.start = bins.start
LEFT JOIN LATERAL (
    SELECT ai.kw
    FROM market_awardinterval ai
    JOIN market_award aw ON aw.id = ai.award_id
    JOIN market_offer o ON o.id = aw.offer_id
    WHERE o.resource_id = %(resource)s AND ai.start <= bins.start AND ai."end" > bins.start
    ORDER BY aw.received_at DESC, aw.id DESC
    LIMIT 1
) awarded ON true
ORDER BY bins.start
"""


def telemetry_vs_award(
    *, resource: VirtualResource, start: datetime, end: datetime, bin_minutes: int
) -> list[TelemetryBin]:
    """[start, end) in bins of `bin_minutes` (elapsed time, so a 25-hour day has 25 hours of bins): the resource's
    telemetry in each and the kW its latest award covering the bin's start awards (a real-time award over a
    day-ahead one wins, as its event replaced the day-ahead one's). One query. Bins should divide the awards'
    intervals (the market's real-time interval does), so each bin lies inside one award interval."""
    step = timedelta(minutes=bin_minutes)
    rows = _rows(_TELEMETRY, {"resource": resource.pk, "start": start, "end": end, "step": step})
    return [
        TelemetryBin(
            start=b_start,
            end=b_end,
            samples=n,
            kw=None if n == 0 else kw_sum / n,
            reporting_min=rmin,
            reporting_max=rmax,
            expected=expected,
            good=good,
            poor=poor,
            none=none,
            awarded_kw=awarded,
        )
        for b_start, b_end, n, kw_sum, rmin, rmax, expected, good, poor, none, awarded in rows
    ]


def merge_bins(bins: list[TelemetryBin], *, minutes: int) -> list[TelemetryBin]:
    """Bins joined into bins of `minutes` counted from the first (e.g. 5-minute bins into hours): the telemetry's
    mean over all their samples, the award's mean over the bins that have one."""
    if not bins:
        return []
    width = timedelta(minutes=minutes)
    groups: dict[int, list[TelemetryBin]] = defaultdict(list)
    for b in bins:
        groups[(b.start - bins[0].start) // width].append(b)
    merged = []
    for _, group in sorted(groups.items()):
        samples = sum(b.samples for b in group)
        weighted = sum((b.kw or 0.0) * b.samples for b in group)
        awarded = [b.awarded_kw for b in group if b.awarded_kw is not None]
        reporting = [b for b in group if b.samples]
        merged.append(
            TelemetryBin(
                start=group[0].start,
                end=group[-1].end,
                samples=samples,
                kw=weighted / samples if samples else None,
                reporting_min=min((b.reporting_min for b in reporting if b.reporting_min is not None), default=None),
                reporting_max=max((b.reporting_max for b in reporting if b.reporting_max is not None), default=None),
                expected=max((b.expected for b in reporting if b.expected is not None), default=None),
                good=sum(b.good for b in group),
                poor=sum(b.poor for b in group),
                none=sum(b.none for b in group),
                awarded_kw=(sum(awarded, Decimal(0)) / len(group)).quantize(Decimal("0.001")) if awarded else None,
            )
        )
    return merged


# --- revenue -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevenueDay:
    """A local day's revenue from the market's awards: events (by the local day they start), our settlement of them
    (the latest run of each: energy and net $), and what the market's imported statements paid for them."""

    day: date
    events: int
    settled: int
    energy: Decimal
    net: Decimal
    statement_amount: Decimal | None


_REVENUE = """
WITH awarded AS (
    SELECT e.id, (e.start AT TIME ZONE %(zone)s)::date AS day
    FROM dispatch_dispatchevent e
    JOIN market_award aw ON aw.event_id = e.id
    JOIN aggregator_virtualresource r ON r.id = e.resource_id
    WHERE r.market_id = %(market)s AND e.start >= %(start)s AND e.start < %(end)s
      AND (%(resource)s::bigint IS NULL OR r.id = %(resource)s::bigint)
), runs AS (
    SELECT DISTINCT ON (run.event_id) run.event_id, run.energy, run.net
    FROM settlement_settlementrun run JOIN awarded ON awarded.id = run.event_id
    ORDER BY run.event_id, run.version DESC
), statements AS (
    -- Per event interval, the latest imported statement's figure (a statement imported again is not counted twice).
    SELECT DISTINCT ON (si.event_id, si.start) si.event_id, si.amount
    FROM settlement_marketstatementinterval si
    JOIN settlement_marketstatement st ON st.id = si.statement_id
    JOIN awarded ON awarded.id = si.event_id
    ORDER BY si.event_id, si.start, st.imported_at DESC, st.id DESC
), stated AS (
    SELECT event_id, sum(amount) AS amount FROM statements GROUP BY event_id
)
SELECT awarded.day, count(*), count(runs.event_id), coalesce(sum(runs.energy), 0), coalesce(sum(runs.net), 0),
       round(sum(stated.amount), 2)
FROM awarded LEFT JOIN runs ON runs.event_id = awarded.id LEFT JOIN stated ON stated.event_id = awarded.id
GROUP BY awarded.day
ORDER BY awarded.day DESC
"""


def revenue_by_day(
    *, market: Market, first: date, last: date, resource: VirtualResource | None = None
) -> list[RevenueDay]:
    """Per local day from `first` to `last` (inclusive) with an awarded event, newest first: the events whose origin
    is an award of the market (or of one resource), the energy and net $ of their latest settlement runs, and the sum
    of the market's statements for them (None when no statement of them is imported). One query."""
    start, _ = local_day(market, first)
    _, end = local_day(market, last)
    rows = _rows(
        _REVENUE,
        {
            "zone": market.time_zone,
            "market": market.pk,
            "start": start,
            "end": end,
            "resource": resource.pk if resource is not None else None,
        },
    )
    return [RevenueDay(day, events, settled, energy, net, stated) for day, events, settled, energy, net, stated in rows]


def zone_of(market: Market) -> ZoneInfo:
    return ZoneInfo(market.time_zone)
