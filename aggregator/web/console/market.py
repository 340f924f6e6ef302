"""The console's Market page: a market's day from forecast to revenue, per resource.

Tomorrow's forecast (P10-P90 band, P50 and expected), the offers of today's and later windows with their state and
deadline countdown (approve and submit for write roles), the chosen offer's curve and intervals, what the market
awarded of it, today's telemetry against the award, and the revenue of awarded events by day. Everything is read
through aggregator.market.selectors; the actions call the offer services.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from aggregator.aggregation.models import VirtualResource
from aggregator.core.charts import Band, Marks, Steps, curve_chart, time_chart
from aggregator.core.errors import DomainError
from aggregator.market import selectors
from aggregator.market.models import Offer, OfferInterval, OfferState
from aggregator.market.offers import services as offers
from aggregator.reference.models import Market
from aggregator.web.console import charts
from aggregator.web.console.views import operator_page

REVENUE_DAYS = 31


def closes_in(seconds: int) -> str:
    """A deadline countdown as the page says it ("closes in 2 h 14 min"); console.js ticks the same words."""
    if seconds <= 0:
        return "closed"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"closes in {hours} h {minutes} min"
    if minutes:
        return f"closes in {minutes} min"
    return "closes in under a minute"


@dataclass(frozen=True)
class OfferRow:
    version: selectors.OfferVersion
    countdown: str
    can_approve: bool
    can_submit: bool


def _offer_rows(versions: list[selectors.OfferVersion], *, can_write: bool) -> list[OfferRow]:
    return [
        OfferRow(
            version=v,
            countdown=closes_in(v.seconds_left),
            can_approve=can_write and v.open and v.offer.state == OfferState.DRAFT,
            can_submit=can_write and v.open and v.offer.state == OfferState.APPROVED,
        )
        for v in versions
    ]


def _choose(request: HttpRequest) -> tuple[list[Market], Market | None, list[VirtualResource], VirtualResource | None]:
    """The markets to choose from, the chosen one (default: the first with registered resources), its resources
    and the chosen one (default: the first)."""
    markets = list(Market.objects.order_by("code"))
    code = request.GET.get("market", "")
    market = next((m for m in markets if m.code == code), None)
    if market is None:
        offering = selectors.markets_with_resources()
        market = offering[0] if offering else (markets[0] if markets else None)
    resources = selectors.market_resources(market) if market is not None else []
    wanted = request.GET.get("resource", "")
    resource = next((r for r in resources if str(r.pk) == wanted), resources[0] if resources else None)
    return markets, market, resources, resource


def _page_url(market: Market | None, resource: VirtualResource | None, **extra) -> str:
    query = {"market": market.code if market else "", "resource": resource.pk if resource else ""}
    query.update({k: v for k, v in extra.items() if v not in (None, "")})
    return f"{reverse('console:market')}?{urlencode(query)}"


def _act(request: HttpRequest, market: Market) -> tuple[Offer | None, str | None, int]:
    """Approve or submit an offer of the market: (the offer, an error to show, the status to show it with)."""
    action, offer_id = request.POST.get("action", ""), request.POST.get("offer", "")
    offer = (
        Offer.objects.select_related("resource").filter(pk=offer_id, resource__market=market).first()
        if offer_id.isdigit()
        else None
    )
    if offer is None or action not in ("approve", "submit"):
        return None, "Choose an offer of this market and an action (approve or submit).", 400
    label = f"Offer {offer.pk} v{offer.version} of {offer.resource.name}"
    try:
        if action == "approve":
            offers.approve_offer(offer=offer, by=request.user)
            messages.success(request, f"{label} approved: beat submits it before the deadline, or submit it now.")
            return offer, None, 200
        done = offers.submit_offer(offer=offer, by=request.user)
    except DomainError as exc:
        return offer, f"{label}: " + " ".join(p.message for p in exc.problems), exc.status
    if done.state == OfferState.SUBMITTED:
        messages.success(request, f"{label} submitted via {done.submitted_via}, receipt {done.submission_ref}.")
        return offer, None, 200
    reasons = " ".join(w["message"] for w in done.warnings if w.get("code") in ("no_connection", "submission_failed"))
    return offer, f"{label} was not submitted: {reasons or 'the market did not take it.'}", 409


def _default_offer(versions: list[selectors.OfferVersion], tomorrow_start: datetime, now: datetime):
    """Tomorrow's day-ahead offer, else the next open day-ahead one, else the latest window's."""
    day_ahead = [v for v in versions if v.offer.market_kind == "day_ahead"]
    for v in day_ahead:
        if v.offer.window_start == tomorrow_start:
            return v
    upcoming = [v for v in day_ahead if v.offer.window_end > now]
    if upcoming:
        return upcoming[0]
    return versions[-1] if versions else None


def _forecast_chart(found: selectors.DayForecast, *, start, end, zone, name: str):
    pieces = [(h.start, h.start + timedelta(hours=1)) for h in found.hours]
    return time_chart(
        start=start,
        end=end,
        zone=zone,
        title=f"{name}: tomorrow's forecast",
        description="P10 to P90 band, P50 and expected kW the resource can deliver per hour",
        bands=[
            Band(
                "p10-p90",
                "P10–P90",
                "#1f6feb",
                [(s, e, h.p10_kw, h.p90_kw) for (s, e), h in zip(pieces, found.hours, strict=True)],
            )
        ],
        steps=[
            Steps(
                "p50", "P50", "#1f6feb", "", [(s, e, h.p50_kw) for (s, e), h in zip(pieces, found.hours, strict=True)]
            ),
            Steps(
                "expected",
                "Expected",
                "#c2410c",
                "6 4",
                [(s, e, h.expected_kw) for (s, e), h in zip(pieces, found.hours, strict=True)],
            ),
        ],
        chart_id="forecast-chart",
    )


def _number(value) -> float | None:
    return None if value is None else float(value)


def _interval_choice(request: HttpRequest, awarded: list[selectors.AwardedInterval]):
    """The interval whose curve is drawn: the one asked for, else the first awarded kW, else the largest offered."""
    wanted = request.GET.get("interval", "")
    for row in awarded:
        if row.start.isoformat() == wanted:
            return row
    with_award = [row for row in awarded if row.awarded_kw]
    if with_award:
        return with_award[0]
    return max(awarded, key=lambda row: row.offered_max_kw) if awarded else None


@operator_page(write=True)
def market(request: HttpRequest) -> HttpResponse:
    markets, chosen, resources, resource = _choose(request)
    now = timezone.now()
    error, status = None, 200
    if request.method == "POST" and chosen is not None:
        acted, error, status = _act(request, chosen)
        if error is None:
            return redirect(_page_url(chosen, resource, offer=acted.pk if acted else None))
    context: dict = {"markets": markets, "market": chosen, "resources": resources, "resource": resource}
    context.update(section="market", error=error, now=now)
    if chosen is None:
        return render(request, "console/market.html", context, status=status)
    zone = selectors.zone_of(chosen)
    today = selectors.today_of(chosen, now)
    today_start, today_end = selectors.local_day(chosen, today)
    tomorrow = today + timedelta(days=1)
    tomorrow_start, tomorrow_end = selectors.local_day(chosen, tomorrow)
    versions = selectors.latest_offers(market=chosen, now=now, since=today_start)
    context.update(
        zone=zone,
        today=today,
        tomorrow=tomorrow,
        offers=_offer_rows(versions, can_write=request.can_write),
        revenue=selectors.revenue_by_day(market=chosen, first=today - timedelta(days=REVENUE_DAYS - 1), last=today),
        revenue_days=REVENUE_DAYS,
        build_hours=settings.MARKET_OFFER_BUILD_HOURS_BEFORE,
    )
    context["revenue_totals"] = {
        "energy": sum((r.energy for r in context["revenue"]), Decimal(0)),
        "net": sum((r.net for r in context["revenue"]), Decimal(0)),
    }
    if resource is not None:
        context.update(_resource_context(request, chosen, resource, now, zone, today_start, today_end))
        forecast = selectors.day_forecasts(market=chosen, resource_ids=[resource.pk], day=tomorrow, now=now).get(
            resource.pk
        )
        context["forecast"] = forecast
        if forecast is not None:
            context["forecast_chart"] = _forecast_chart(
                forecast, start=tomorrow_start, end=tomorrow_end, zone=zone, name=resource.name
            )
        mine = selectors.latest_offers(
            market=chosen, now=now, since=today_start, resource_ids=[resource.pk], with_intervals=True
        )
        wanted = request.GET.get("offer", "")
        picked = next((v for v in mine if str(v.offer.pk) == wanted), None) or _default_offer(mine, tomorrow_start, now)
        if picked is not None:
            context.update(_offer_context(request, picked, zone, can_write=request.can_write))
    return render(request, "console/market.html", context, status=status)


def _offer_context(request: HttpRequest, picked: selectors.OfferVersion, zone, *, can_write: bool) -> dict:
    offer = picked.offer
    awarded = selectors.awards_vs_offer(offer=offer)
    interval = _interval_choice(request, awarded)
    segments_by_start = {i.start: i for i in picked.intervals}
    chosen_interval: OfferInterval | None = segments_by_start.get(interval.start) if interval else None
    curve = None
    if chosen_interval is not None:
        marker = (
            (float(interval.awarded_kw), float(interval.price_per_mwh))
            if interval.awarded_kw is not None and interval.price_per_mwh is not None
            else None
        )
        curve = curve_chart(
            [[float(kw), float(price)] for kw, price in chosen_interval.segments],
            title=f"Offer curve, {interval.start.astimezone(zone):%Y-%m-%d %H:%M %Z}",
            description=f"{len(chosen_interval.segments)} segments, {chosen_interval.max_kw} kW in all"
            + (f"; awarded {interval.awarded_kw} kW at ${interval.price_per_mwh:.2f}/MWh" if marker else ""),
            marker=marker,
            chart_id="curve-chart",
        )
    awards_chart = None
    if awarded:
        awards_chart = time_chart(
            start=offer.window_start,
            end=offer.window_end,
            zone=zone,
            title="Awarded vs offered kW",
            description="Offered maximum and awarded kW per interval of the offer",
            # The offered maximum is drawn dashed over the award, so it shows where the award took all of it.
            steps=[
                Steps("awarded", "Awarded", "#c2410c", "", [(a.start, a.end, _number(a.awarded_kw)) for a in awarded]),
                Steps(
                    "offered",
                    "Offered max",
                    "#1f2328",
                    "6 4",
                    [(a.start, a.end, float(a.offered_max_kw)) for a in awarded],
                ),
            ],
            chart_id="awards-chart",
        )
    return {
        "picked": _offer_rows([picked], can_write=can_write)[0],
        "offer": offer,
        "offer_intervals": [(i, [(kw, price) for kw, price in i.segments]) for i in picked.intervals],
        "awarded": awarded,
        "any_award": any(a.awarded_kw is not None for a in awarded),
        "awards": selectors.awards_of(offer=offer),
        "interval": interval,
        "curve_chart": curve,
        "awards_chart": awards_chart,
    }


# The telemetry chart's series as charts.js draws them with hover values and zoom (key, label, colour, dash).
TELEMETRY_SERIES = [("kw", "Telemetry kW", "#1f6feb", ""), ("awarded", "Awarded kW", "#c2410c", "6 4")]


def _resource_context(request, chosen: Market, resource: VirtualResource, now, zone, start, end) -> dict:
    bins = selectors.telemetry_vs_award(
        resource=resource, start=start, end=end, bin_minutes=int(chosen.real_time_interval_minutes)
    )
    has_samples = any(b.samples for b in bins)
    has_award = any(b.awarded_kw is not None for b in bins)
    chart = None
    if has_samples or has_award:
        chart = time_chart(
            start=start,
            end=end,
            zone=zone,
            title=f"{resource.name}: today's telemetry vs award",
            description=(
                f"Mean telemetry kW per {chosen.real_time_interval_minutes} minutes (the resource's net kW, positive: "
                "consumption) and the kW awarded (a reduction against its baseline); marks where members' reporting "
                "was poor or none"
            ),
            steps=[
                Steps("telemetry", "Telemetry kW", "#1f6feb", "", [(b.start, b.end, b.kw) for b in bins]),
                Steps(
                    "awarded", "Awarded kW", "#c2410c", "6 4", [(b.start, b.end, _number(b.awarded_kw)) for b in bins]
                ),
            ],
            marks=[
                Marks("poor", "Poor quality", "#d4a72c", [(b.start, b.end) for b in bins if b.quality == "poor"]),
                Marks(
                    "none", "No member reporting", "#cf222e", [(b.start, b.end) for b in bins if b.quality == "none"]
                ),
            ],
            chart_id="telemetry-chart",
        )
        chart = charts.interactive(
            chart,
            [{"start": b.start, "kw": b.kw, "awarded": _number(b.awarded_kw)} for b in bins],
            TELEMETRY_SERIES,
            zone=zone,
            title=f"{resource.name}: today's telemetry vs award",
        )
    return {
        "telemetry_chart": chart,
        "telemetry_hours": selectors.merge_bins(bins, minutes=60),
        "has_samples": has_samples,
        "has_today_award": has_award,
    }
