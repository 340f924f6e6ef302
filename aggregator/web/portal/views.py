"""The customer portal: a customer's own sites, devices, events, earnings and bill savings, and their choices.

A customer logs in with their own account (enrollment.CustomerLogin, separate from the
operators' roles) and sees only their own customer's data: every query here starts from
it, and another customer's device or command answers 404.
"""

from collections import defaultdict
from datetime import UTC, date, datetime
from functools import wraps
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from aggregator.core.charts import bar_chart
from aggregator.core.errors import DomainError
from aggregator.web.portal import services
from dispatch import services as dispatch
from dispatch.models import DeviceCommand
from enrollment.models import Device, Site
from settlement import billing

SAVINGS_MONTHS = 3
EARNINGS_MONTHS = 12

# The customer's settled events, latest version of each: delivered kWh and the customer's payout.
_EVENTS = """
WITH runs AS (
    SELECT DISTINCT ON (r.event_id) r.id, r.event_id FROM settlement_settlementrun r
    WHERE EXISTS (SELECT 1 FROM settlement_sitesettlement s WHERE s.run_id = r.id AND s.customer_id = %(customer)s)
    ORDER BY r.event_id, r.version DESC
)
SELECT e.id, e.start, e."end", vr.name,
       (SELECT coalesce(sum(x), 0) FROM settlement_sitesettlement s, unnest(s.reduction_kwh) x
        WHERE s.run_id = runs.id AND s.customer_id = %(customer)s),
       p.net
FROM runs JOIN dispatch_dispatchevent e ON e.id = runs.event_id JOIN aggregator_virtualresource vr ON vr.id = e.resource_id
LEFT JOIN settlement_customerpayout p ON p.run_id = runs.id AND p.customer_id = %(customer)s
ORDER BY e.start DESC
"""


def customer_page(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url=reverse("portal:login"))
        login = getattr(request.user, "customer_login", None)
        if login is None:
            raise PermissionDenied  # an operator account is not a customer's
        request.customer = login.customer
        return view(request, *args, **kwargs)

    return wrapped


def _months_back(today: date, count: int) -> list[tuple[int, int]]:
    out, year, month = [], today.year, today.month
    for _ in range(count):
        out.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def _context(request, *, now: datetime) -> dict:
    customer = request.customer
    sites = list(
        Site.objects.filter(customer=customer)
        .select_related("market")
        .prefetch_related("devices__status", "devices__charging_need")
        .order_by("pk")
    )
    devices = [d for site in sites for d in site.devices.all()]
    limits = {d.pk: services.reserve_limits(d) for d in devices if d.device_type == "battery"}
    upcoming = (
        DeviceCommand.objects.filter(
            device__site__customer=customer, status__in=["pending", "accepted"], expires_at__gt=now
        )
        .exclude(kind="cancel")
        .select_related("event__resource", "device")
        .order_by("not_before")
    )
    with connection.cursor() as cursor:
        cursor.execute(_EVENTS, {"customer": customer.pk})
        past = cursor.fetchall()
    zone = ZoneInfo(sites[0].time_zone) if sites else UTC
    today = now.astimezone(zone).date()
    earnings = defaultdict(lambda: 0)
    for _, start, _, _, _, net in past:
        local = start.astimezone(zone)
        earnings[(local.year, local.month)] += net or 0
    savings, notes = defaultdict(lambda: 0), []
    for site in sites:
        if not site.retail_tariff:
            continue
        for year, month in _months_back(today, SAVINGS_MONTHS):
            try:
                bill = billing.monthly(site, year, month)
            except DomainError as refused:
                notes.append(f"{site.name or site.meter_id}, {year}-{month:02d}: {refused.problems[0].message}")
                continue
            if bill["intervals"]:
                savings[(year, month)] += bill["savings"]["total"] - bill["savings"]["grid_services"]
    months = _months_back(today, EARNINGS_MONTHS)
    chart = bar_chart(
        labels=[f"{y}-{m:02d}" for y, m in months],
        series=[
            ("Grid-service earnings", "#1f6feb", [float(earnings[k]) for k in months]),
            ("Bill savings", "#15803d", [float(savings[k]) for k in months]),
        ],
        unit="$",
        title="Earnings and bill savings by month",
    )
    return {
        "customer": customer,
        "zone": zone,  # the customer's own clock: their first site's
        "sites": sites,
        "limits": limits,
        "upcoming": upcoming,
        "past": past[:24],
        "chart": chart,
        "notes": notes,
        "savings_months": SAVINGS_MONTHS,
        "totals": {"earnings": sum(earnings.values()), "savings": sum(savings.values())},
    }


@customer_page
def home(request):
    return render(request, "portal/home.html", _context(request, now=timezone.now()))


@customer_page
def opt_out(request, command_id):
    """One click: the device sits out this event (others replace it)."""
    if request.method != "POST":
        return redirect("portal:home")
    command = (
        DeviceCommand.objects.filter(pk=command_id, device__site__customer=request.customer)
        .select_related("event")
        .first()
    )
    if command is None:
        raise Http404
    now = timezone.now()
    try:
        dispatch.opt_out(
            device_id=command.device_id,
            start=now,
            end=command.expires_at,
            event=command.event,
            reason="customer portal",
            now=now,
        )
    except DomainError as refused:
        messages.error(request, refused.problems[0].message)
    else:
        messages.success(request, f"Your device will sit out the event of {command.event.start:%d %b %H:%M} UTC.")
    return redirect("portal:home")


def _own_device(request, device_id: int) -> Device:
    device = Device.objects.filter(pk=device_id, site__customer=request.customer).first()
    if device is None:
        raise Http404  # another customer's device does not exist for this one
    return device


def _refused(request, key: str, value):
    """The page again, with the refusal shown at its device's form (HTTP 400)."""
    context = _context(request, now=timezone.now())
    context[key] = value
    return render(request, "portal/home.html", context, status=400)


@customer_page
def charging(request, device_id: int):
    """The car's nightly needs: plugged in from, ready by, kWh to add; the charger's plan follows them."""
    device = _own_device(request, device_id)
    if request.method != "POST":
        return redirect("portal:home")
    try:
        services.set_charging_need(
            device=device,
            plug_in_hour=request.POST.get("plug_in_hour"),
            ready_by_hour=request.POST.get("ready_by_hour"),
            energy_kwh=request.POST.get("energy_kwh", ""),
        )
    except DomainError as refused:
        return _refused(request, "charging_error", (device.pk, [(p.field, p.message) for p in refused.problems]))
    messages.success(request, "Charging needs saved: the charger's plan from tomorrow follows them.")
    return redirect("portal:home")


@customer_page
def reserve(request, device_id: int):
    device = _own_device(request, device_id)
    if request.method != "POST":
        return redirect("portal:home")
    try:
        services.set_reserve(device=device, value=request.POST.get("backup_reserve_pct", ""))
    except DomainError as refused:
        return _refused(request, "reserve_error", (device.pk, refused.problems[0].message))
    messages.success(request, f"Backup reserve of {device.model} set to {device.backup_reserve_pct:g}%.")
    return redirect("portal:home")
