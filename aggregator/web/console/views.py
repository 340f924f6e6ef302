"""The operator console: server-rendered pages over the same services and selectors as the API.

Every page needs a login and an operator role; creating and cancelling events needs a
write role. Each page is a handful of set-based queries, so it stays fast with a full fleet.
"""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from aggregator.aggregation.models import VirtualResource
from aggregator.aggregation.selectors import capability_of
from aggregator.core import charts as core_charts
from aggregator.core.charts import step_chart
from aggregator.core.errors import DomainError
from aggregator.core.redis_client import client
from aggregator.core.workers import live_workers
from aggregator.reference.models import Market, Utility
from aggregator.web import health as probes
from aggregator.web.console import charts
from aggregator.web.console.access import operator_page
from dispatch import overrides, resilience, selectors, services
from dispatch.models import DispatchEvent, StormWatch, UtilityOverride
from enrollment import selectors as fleet_selectors
from enrollment import services as enrollment_services
from settlement import pages
from settlement.models import SettlementRun

RECOUNT_SECONDS = 10  # "Count now" counts again only when the latest count is older than this

CAPABILITY_SERIES = [("kw", "Available kW", "#1f6feb", "")]
EVENT_SERIES = [
    ("target_kw", "Target", "#6b7280", "6 4"),
    ("allocated_kw", "Allocated", "#1f6feb", "2 3"),
    ("delivered_kw", "Delivered", "#c2410c", ""),
]


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@operator_page()
def fleet(request):
    """Devices by type and status, enrollment states, and the fleet per pricing node, as last counted (beat counts
    every minute; a million devices take seconds to count). "Count now" counts again, at most every few seconds."""
    latest = fleet_selectors.latest_fleet_count()
    now = timezone.now()
    stale = latest is None or latest.counted_at < now - timedelta(seconds=settings.FLEET_COUNT_MAX_AGE_SECONDS)
    if request.method == "POST":
        if latest is None or latest.counted_at < now - timedelta(seconds=RECOUNT_SECONDS):
            enrollment_services.recount_fleet(now=now)
        return redirect("console:fleet")
    count = enrollment_services.recount_fleet(now=now) if stale else latest  # stale: beat has stopped counting
    totals = [sum(row[i] for row in count.by_type) for i in (1, 2, 3, 4)]
    return render(
        request,
        "console/fleet.html",
        {
            "by_type": count.by_type,
            "totals": totals,
            "enrollment": count.enrollment,
            "nodes": count.nodes,
            "count": count,
            "section": "fleet",
        },
    )


@operator_page()
def resources(request):

    items = list(
        VirtualResource.objects.select_related("market", "program")
        .annotate(members=Count("memberships", distinct=True))
        .order_by("market__code", "name")
    )
    capability = (
        capability_of(resource_ids=[r.pk for r in items], now=timezone.now(), hours=1, event_hours=2) if items else {}
    )
    rows = [(r, capability.get(r.pk, {}).get("now_kw", 0)) for r in items]
    return render(request, "console/resources.html", {"rows": rows, "section": "resources"})


@operator_page()
def resource(request, pk: int):

    item = VirtualResource.objects.select_related("market", "program").filter(pk=pk).first()
    if item is None:
        raise Http404
    now = timezone.now()
    figures = capability_of(resource_ids=[pk], now=now, hours=48, event_hours=2)[pk]
    rows = [{"start": f["start"], "kw": f["kw"]} for f in figures["forecast"]]
    zone = ZoneInfo(item.market.time_zone)
    title = f"{item}: available kW, next 48 hours"
    chart = step_chart(
        rows, CAPABILITY_SERIES, zone=zone, title=title, description="Available kW of the resource's members per hour"
    )
    chart = charts.interactive(chart, rows, CAPABILITY_SERIES, zone=zone, title=title)
    members = _rows(
        """
        SELECT d.id, d.device_type, d.manufacturer, d.rated_kw, site.pricing_node, c.external_ref, s.online, s.last_seen_at
        FROM aggregator_resourcemembership m JOIN enrollment_device d ON d.id = m.device_id
        JOIN enrollment_site site ON site.id = d.site_id JOIN enrollment_customer c ON c.id = site.customer_id
        LEFT JOIN enrollment_devicestatus s ON s.device_id = d.id
        WHERE m.resource_id = %s AND m.left_at IS NULL ORDER BY d.id LIMIT 200""",
        [pk],
    )
    return render(
        request,
        "console/resource.html",
        {"item": item, "figures": figures, "chart": chart, "members": members, "section": "resources", "zone": zone},
    )


def _moments(data: dict, names, zone: str | None, problems: list) -> dict:
    """The named form values as datetimes; without an offset they are read in market time (the forms ask so)."""
    values = {}
    for name in names:
        try:
            moment = datetime.fromisoformat(data[name])
        except ValueError:
            problems.append((name, "A date and time, e.g. 2026-07-15T14:00."))
            continue
        if moment.tzinfo is None and zone is not None:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        values[name] = moment
    return values


def _event_form(request) -> tuple[dict, list]:
    """The create form's values and its problems by field (the service has the final word)."""
    data, problems = {k: request.POST.get(k, "").strip() for k in ("resource", "start", "end", "target_kw")}, []
    resource = VirtualResource.objects.filter(pk=data["resource"]).first() if data["resource"].isdigit() else None
    if resource is None:
        problems.append(("resource", "Choose a resource."))
    values = _moments(data, ("start", "end"), resource.market.time_zone if resource else None, problems)
    try:
        values["target_kw"] = Decimal(data["target_kw"])
    except InvalidOperation:
        problems.append(("target_kw", "A number of kW."))
    values["resource"] = resource
    return {**data, **values}, problems


@operator_page(write=True)
def events(request):

    form, problems, preview = {}, [], None
    if request.method == "POST":
        form, problems = _event_form(request)
        if not problems and "preview" in request.POST:
            try:
                preview = services.preview_event(
                    resource=form["resource"],
                    source="operator_test",
                    start=form["start"],
                    end=form["end"],
                    target_kw=form["target_kw"],
                    by=request.user,
                )
                preview["peak_kw"] = max(preview["allocated_kw"], default=0)
                preview["target_peak_kw"] = max(preview["target_kw"], default=0)
            except DomainError as exc:
                problems = [(p.field or "form", p.message) for p in exc.problems]
        elif not problems:
            try:
                with transaction.atomic():
                    event = services.create_event(
                        resource=form["resource"],
                        source="operator_test",
                        start=form["start"],
                        end=form["end"],
                        target_kw=form["target_kw"],
                        by=request.user,
                    )
                return redirect("console:event", pk=event.pk)
            except DomainError as exc:
                problems = [(p.field or "form", p.message) for p in exc.problems]
    recent = DispatchEvent.objects.select_related("resource__market").order_by("-start")[:50]
    startable = VirtualResource.objects.filter(state__in=["submitted", "registered", "active"]).select_related("market")
    soon = (timezone.now() + timedelta(minutes=2)).replace(second=0, microsecond=0)
    return render(
        request,
        "console/events.html",
        {
            "events": recent,
            "resources": startable,
            "form": form,
            "problems": problems,
            "section": "events",
            "problem_fields": {f for f, _ in problems},
            "preview": preview,
            "default_start": soon,
            "default_end": soon + timedelta(hours=1),
        },
        status=400 if problems else 200,
    )


@operator_page(write=True)
def event(request, pk: int):

    item = DispatchEvent.objects.select_related("resource__market").filter(pk=pk).first()
    if item is None:
        raise Http404
    if request.method == "POST" and request.POST.get("action") == "cancel":
        try:
            services.cancel(
                event=item, by=request.user, reason=request.POST.get("reason") or "Cancelled from the console."
            )
        except DomainError as exc:
            return render(
                request,
                "console/event.html",
                {**_event_context(item, selectors), "error": exc.problems[0].message},
                status=409,
            )
        return redirect("console:event", pk=pk)
    template = "console/event_live.html" if request.GET.get("part") == "live" else "console/event.html"
    return render(request, template, _event_context(item, selectors))


def _event_context(item, selectors) -> dict:
    zone = ZoneInfo(item.resource.market.time_zone)
    intervals = selectors.target_vs_delivered(event=item)
    rows = [
        {
            "start": r["start"],
            "target_kw": r["target_kw"],
            "allocated_kw": r["allocated_kw"],
            "delivered_kw": r["delivered_kw"],
        }
        for r in intervals
    ]
    title = f"Event {item.pk}: target, allocated and delivered kW"
    chart = step_chart(
        rows, EVENT_SERIES, zone=zone, title=title, description="Target, allocated and delivered kW per interval"
    )
    chart = charts.interactive(chart, rows, EVENT_SERIES, zone=zone, title=title)
    statuses = dict(
        _rows("SELECT status, count(*) FROM dispatch_devicecommand WHERE event_id = %s GROUP BY status", [item.pk])
    )
    trouble = _rows(
        """
        SELECT c.device_id, d.device_type, c.status, coalesce(nullif(c.reason, ''), o.reason, ''), c.acknowledged_at
        FROM dispatch_devicecommand c JOIN enrollment_device d ON d.id = c.device_id
        LEFT JOIN LATERAL (SELECT reason FROM dispatch_deviceoptout o WHERE o.device_id = c.device_id AND o.event_id = c.event_id
                           ORDER BY o.id DESC LIMIT 1) o ON true
        WHERE c.event_id = %s AND c.status IN ('rejected', 'opted_out', 'expired')
        ORDER BY c.status, c.device_id LIMIT 100""",
        [item.pk],
    )
    runs = list(item.settlement_runs.order_by("-version")[:5])
    return {
        "item": item,
        "intervals": intervals,
        "chart": chart,
        "statuses": statuses,
        "trouble": trouble,
        "zone": zone,
        "runs": runs,
        "overrides": overrides.for_event(item),
        "rebound": _rebound_summary(item),
        "section": "events",
        "live": item.state in ("scheduled", "notified", "active"),
        "settleable": _settleable(item),
        "now": datetime.now(UTC),
    }


def _settleable(item: DispatchEvent) -> bool:
    """Ended, or cancelled after it started (settled for what it asked until then)."""
    served = selectors.served_end(item)
    return item.state != "active" and served is not None and served <= datetime.now(UTC)


def _rebound_summary(item) -> dict | None:
    """The latest round's expected rebound after the event: its peak, when, its energy and the stagger."""
    latest = item.rounds.order_by("-number").first()
    if latest is None or not latest.rebound_kw:
        return None
    kw = latest.rebound_kw
    peak = max(kw)
    stagger = item.allocations.aggregate(longest=Max("restore_offset_seconds"))["longest"] or 0
    limit = item.resource.program.rebound_limit_kw
    return {
        "peak_kw": round(peak, 1),
        "peak_minute": kw.index(peak),
        "kwh": round(sum(kw) / 60, 1),
        "minutes": len(kw),
        "stagger_minutes": stagger // 60,
        "limit_kw": limit,
        "within_limit": latest.rebound_within_limit,
    }


@operator_page()
def settlement(request):

    runs = SettlementRun.objects.select_related("event__resource__market").order_by("-created_at")[:50]
    return render(
        request,
        "console/settlement.html",
        {
            "runs": runs,
            "resources": VirtualResource.objects.order_by("name"),
            "section": "settlement",
            "period_url": reverse("console:period"),
            "today": timezone.now().date(),
        },
    )


@operator_page()
def statement(request, pk: int):
    """A run's statement: the chart of baseline vs actual, customers and every site's intervals (and as CSV)."""

    run = SettlementRun.objects.select_related("event__resource__market").filter(pk=pk).first()
    if run is None:
        raise Http404
    if request.GET.get("format") == "csv":
        return pages.statement_csv(run)
    context = pages.statement_context(run)
    context["chart"] = charts.interactive(
        context["chart"],
        core_charts.baseline_vs_actual_rows(context["totals"]),
        core_charts.SERIES,
        zone=context["zone"],
        title=f"Event {run.event_id}: baseline vs actual, version {run.version}",
    )
    return render(request, "console/statement.html", {**context, "section": "settlement"})


@operator_page()
def period(request):
    """Statements for a period, per resource or per customer (and as CSV)."""

    context, download = pages.period_context(request.GET)
    if download is not None:
        return download
    return render(
        request,
        "console/period.html",
        {**context, "section": "settlement"},
        status=400 if context["form"].is_bound and context["form"].errors else 200,
    )


@operator_page()
def health(request):

    try:
        now = time.time()
        workers = {"ok": True, "beats": [(name, round(now - beat, 1)) for name, beat in live_workers().items()]}
        workers["ok"] = bool(workers["beats"])
    except Exception as exc:  # the page reports a broken broker rather than failing
        workers = {"ok": False, "beats": [], "error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        queue = client().llen("celery")
    except Exception as exc:  # the page reports a broken broker rather than failing
        queue = f"unknown ({type(exc).__name__})"
    beat = _rows(
        "SELECT name, last_run_at, total_run_count FROM django_celery_beat_periodictask "
        "WHERE enabled ORDER BY last_run_at DESC NULLS LAST"
    )
    heartbeat = _rows("SELECT max(last_seen_at), count(*) FILTER (WHERE online) FROM enrollment_devicestatus")[0]
    delivery = _rows(
        "SELECT max(reported_at) FROM dispatch_deliveryreport WHERE event_id IN "
        "(SELECT id FROM dispatch_dispatchevent ORDER BY start DESC LIMIT 10)"
    )[0][0]
    return render(
        request,
        "console/health.html",
        {
            "workers": workers,
            "queue": queue,
            "beat": beat,
            "last_heartbeat": heartbeat[0],
            "online": heartbeat[1],
            "last_delivery": delivery,
            "database": probes._timed(probes._database),
            "section": "health",
        },
    )


@operator_page(write=True)
def storm_watches(request):
    """Storm watches: declare one for a zone or pricing nodes and a window (market time), see and cancel them."""

    form, problems, override_form, override_problems = {}, [], {}, []
    if request.method == "POST" and request.POST.get("cancel_override", "").isdigit():
        override = UtilityOverride.objects.filter(pk=int(request.POST["cancel_override"])).first()
        if override is None:
            raise Http404
        overrides.cancel(override=override)
        return redirect("console:storm-watches")
    if request.method == "POST" and request.POST.get("cancel", "").isdigit():
        watch = StormWatch.objects.filter(pk=int(request.POST["cancel"])).first()
        if watch is None:
            raise Http404
        resilience.cancel(watch=watch)
        return redirect("console:storm-watches")
    if request.method == "POST" and request.POST.get("kind") == "override":
        override_form, override_problems = _utility_override(request)
        if not override_problems:
            return redirect("console:storm-watches")
    elif request.method == "POST":
        form = {
            k: request.POST.get(k, "").strip() for k in ("market", "zone", "pricing_nodes", "start", "end", "reason")
        }
        market = Market.objects.filter(code=form["market"]).first()
        if market is None:
            problems.append(("market", "Choose a market."))
        moments = _moments(form, ("start", "end"), market.time_zone if market else None, problems)
        if not problems:
            try:
                resilience.declare(
                    market=market,
                    zone=form["zone"],
                    start=moments["start"],
                    end=moments["end"],
                    pricing_nodes=[n.strip() for n in form["pricing_nodes"].split(",") if n.strip()],
                    reason=form["reason"],
                    by=request.user,
                )
                return redirect("console:storm-watches")
            except DomainError as exc:
                problems = [(p.field or "form", p.message) for p in exc.problems]
    watches = StormWatch.objects.select_related("market").order_by("-start")[:50]
    soon = (timezone.now() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return render(
        request,
        "console/storm_watches.html",
        {
            "watches": watches,
            "overrides": UtilityOverride.objects.select_related("utility", "market").order_by("-start")[:50],
            "markets": Market.objects.order_by("code"),
            "form": form,
            "problems": problems,
            "problem_fields": {f for f, _ in problems},
            "utilities": Utility.objects.order_by("name"),
            "override_form": override_form,
            "override_problems": override_problems,
            "override_problem_fields": {f for f, _ in override_problems},
            "section": "storm",
            "default_start": soon,
            "default_end": soon + timedelta(hours=12),
            "now": timezone.now(),
        },
        status=400 if problems or override_problems else 200,
    )


def _utility_override(request) -> tuple[dict, list]:
    """Key in a utility's override on its word (by phone, say): the same rules as the utility's own API."""
    names = ("utility", "market", "zone", "pricing_nodes", "start", "end", "cap_kw", "reason")
    form, problems = {k: request.POST.get(k, "").strip() for k in names}, []
    utility = Utility.objects.filter(name=form["utility"]).first()
    if utility is None:
        problems.append(("utility", "Choose a utility."))
    market = Market.objects.filter(code=form["market"]).first()
    if market is None:
        problems.append(("market", "Choose a market."))
    moments = _moments(form, ("start", "end"), market.time_zone if market else None, problems)
    cap_kw = None
    if form["cap_kw"]:
        try:
            cap_kw = Decimal(form["cap_kw"])
        except InvalidOperation:
            cap_kw = None
        if cap_kw is None or not cap_kw.is_finite():
            problems.append(("cap_kw", "A number of kW, or empty to block."))
    if problems:
        return form, problems
    try:
        overrides.make(
            utility=utility,
            market=market,
            zone=form["zone"],
            pricing_nodes=[n.strip() for n in form["pricing_nodes"].split(",") if n.strip()],
            start=moments["start"],
            end=moments["end"],
            cap_kw=cap_kw,
            reason=form["reason"],
            by=f"{request.user.get_username()} for {utility.name}",
        )
    except DomainError as exc:
        problems = [(p.field or "form", p.message) for p in exc.problems]
    return form, problems
