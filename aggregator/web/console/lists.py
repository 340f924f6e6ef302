"""The console's lists: one mechanism for customers, sites, devices, enrollments, resources, events and settlement
runs, each declared as a Listing. Filters are the operator API's own filter sets (the same query parameters mean
the same thing on /api/v1/ and here), search and ordering are DRF's SearchFilter and OrderingFilter over the
listing's fields; pages of PER_PAGE rows, and every matching row as CSV.

A page is two queries (the count and the page, the page joined to what its columns show), so it stays fast with a
fleet of a million devices: the count stops at COUNT_UP_TO rows (or at the end of the page asked for), and beyond it
the page says "more than"; the CSV export streams the rows in chunks.
"""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.paginator import EmptyPage, Paginator
from django.db.models import Count, QuerySet
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.functional import cached_property
from rest_framework.filters import OrderingFilter, SearchFilter

from aggregator.aggregation.filtersets import VirtualResourceFilter
from aggregator.aggregation.models import VirtualResource
from aggregator.core.csv_files import safe_cell
from aggregator.reference.models import Market
from aggregator.web.console.access import operator_page
from aggregator.web.templatetags.market_time import human_time, with_unit
from dispatch.filtersets import DispatchEventFilter
from dispatch.models import DispatchEvent
from dispatch.ocpp.filtersets import ChargerFilter
from dispatch.ocpp.models import Charger
from enrollment.filtersets import CustomerFilter, DeviceFilter, EnrollmentFilter, SiteFilter
from enrollment.models import Customer, Device, Enrollment, Site
from settlement.filtersets import SettlementRunFilter
from settlement.models import SettlementRun
from settlement.money import CURRENCY

PER_PAGE = 50
CSV_CHUNK = 2000
# Rows counted exactly; past them a page says "more than 1,000". An exact count of a million matching devices
# costs seconds (every matching row is visited), and nobody pages through more than this: they filter.
COUNT_UP_TO = 1_000


class CountedUpTo(Paginator):
    """Django's paginator with a count that stops at COUNT_UP_TO rows, or at the end of the page asked for when that
    is further: the count is exact up to it, and past it there is always a next page.

    The count reads the matching rows' ids (up to the limit); when they are all known, the page is read by those
    ids. Read the usual way, a page of few matches ordered by an indexed column is a planner trap: PostgreSQL walks
    that index expecting a match soon and visits every row (a serial searched among a million devices: 0.9 s).
    """

    def __init__(self, object_list, per_page: int, number) -> None:
        super().__init__(object_list, per_page)
        wanted = int(number) if str(number).isdigit() else 1
        self.limit = max(COUNT_UP_TO, wanted * per_page)

    @cached_property
    def ids(self) -> list:
        # Without its ordering: no sort, and its LIMIT stops the scan at the first `limit` + 1 rows.
        return list(self.object_list.order_by().values_list("pk", flat=True)[: self.limit + 1])

    @cached_property
    def count(self) -> int:
        return len(self.ids)

    @property
    def exact(self) -> bool:
        return self.count <= self.limit

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = self.object_list.filter(pk__in=self.ids) if self.exact else self.object_list
        return self._get_page(rows[bottom : bottom + self.per_page], number, self)


@dataclass(frozen=True)
class Column:
    """A column: its heading, its cell as text (and as a link when `link` gives one), and the ordering field that
    sorts by it (none: not sortable)."""

    label: str
    value: Callable[[Any], Any]
    order: str | None = None
    link: Callable[[Any], str | None] | None = None
    csv: bool = True  # a link-only column ("its devices") has nothing to export


@dataclass(frozen=True)
class Listing:
    name: str
    title: str
    queryset: Callable[[], QuerySet]
    filterset: type
    filters: tuple[str, ...]  # the filter set's fields the page offers; the others still apply from the URL
    search: tuple[str, ...]
    columns: tuple[Column, ...]
    ordering: str
    empty: str  # what to do when there is nothing at all yet
    history: bool = False  # each row links to its change history
    choices: dict[str, Callable[[], list[tuple[str, str]]]] = field(default_factory=dict)

    @property
    def ordering_fields(self) -> list[str]:
        return [c.order for c in self.columns if c.order]


def _market_codes() -> list[tuple[str, str]]:
    return [(code, code) for code in Market.objects.order_by("code").values_list("code", flat=True)]


def _zone(market) -> str:
    return market.time_zone


def _status(device):
    try:
        return device.status
    except Device.status.RelatedObjectDoesNotExist:
        return None


def _online(device) -> str:
    status = _status(device)
    return "online" if status is not None and status.online else "offline"


def _last_seen(device) -> str:
    status = _status(device)
    return human_time(status.last_seen_at if status else None, device.site.market.time_zone) or "never"


LISTINGS = {
    listing.name: listing
    for listing in (
        Listing(
            name="customers",
            title="Customers",
            queryset=lambda: Customer.objects.all(),
            filterset=CustomerFilter,
            filters=("kind",),
            search=("external_ref", "name", "email", "contact_name"),
            columns=(
                Column("Reference", lambda c: c.external_ref, "external_ref"),
                Column("Name", lambda c: c.name, "name"),
                Column("Kind", lambda c: c.get_kind_display()),
                Column("E-mail", lambda c: c.email),
                Column("Sites", lambda c: "sites", link=lambda c: _url("sites", customer=c.pk), csv=False),
                Column("Created", lambda c: human_time(c.created_at, None), "created_at"),
            ),
            ordering="external_ref",
            empty="No customers yet: import a fleet file (Fleet import) or add them in the admin.",
        ),
        Listing(
            name="sites",
            title="Sites",
            queryset=lambda: Site.objects.select_related("market", "customer"),
            filterset=SiteFilter,
            filters=("market", "pricing_node", "zone", "utility"),
            search=("meter_id", "address", "city", "customer__name", "customer__external_ref"),
            columns=(
                Column("Meter", lambda s: f"{s.utility} {s.meter_id}".strip(), "meter_id"),
                Column("Customer", lambda s: s.customer.external_ref, "customer__external_ref"),
                Column("Market", lambda s: s.market.code, "market__code"),
                Column("Pricing node", lambda s: s.pricing_node, "pricing_node"),
                Column("Zone", lambda s: s.zone),
                Column("City", lambda s: s.city, "city"),
                Column("Devices", lambda s: "devices", link=lambda s: _url("devices", site=s.pk), csv=False),
                Column("Created", lambda s: human_time(s.created_at, s.market.time_zone), "created_at"),
            ),
            ordering="meter_id",
            empty="No sites yet: import a fleet file (Fleet import); each row brings its site.",
            history=True,
            choices={"market": _market_codes},
        ),
        Listing(
            name="devices",
            title="Devices",
            queryset=lambda: Device.objects.select_related("site__market", "status"),
            filterset=DeviceFilter,
            filters=("market", "pricing_node", "device_type", "online", "enrollment_state"),
            search=("serial", "manufacturer", "model"),
            columns=(
                Column("Device", lambda d: d.pk, "id"),
                Column("Type", lambda d: d.device_type, "device_type"),
                Column("Make and model", lambda d: f"{d.manufacturer} {d.model}".strip(), "manufacturer"),
                Column("Serial", lambda d: d.serial, "serial"),
                Column("Rated", lambda d: with_unit(d.rated_kw, "kW"), "rated_kw"),
                Column("Market", lambda d: d.site.market.code, "site__market__code"),
                Column("Pricing node", lambda d: d.site.pricing_node, "site__pricing_node"),
                Column("Status", _online),
                Column("Last seen", _last_seen, "status__last_seen_at"),
            ),
            ordering="id",
            empty="No devices yet: import a fleet file (Fleet import) to register them.",
            history=True,
            choices={"market": _market_codes},
        ),
        Listing(
            name="enrollments",
            title="Enrollments",
            queryset=lambda: Enrollment.objects.select_related("device", "program__market"),
            filterset=EnrollmentFilter,
            filters=("market", "program", "state", "review_overdue"),
            search=("device__serial", "device__manufacturer", "program__code"),
            columns=(
                Column("Enrollment", lambda e: e.pk, "id"),
                Column("Device", lambda e: f"{e.device_id} {e.device.manufacturer} {e.device.serial}"),
                Column("Program", lambda e: e.program.code, "program__code"),
                Column("State", lambda e: e.get_state_display(), "state"),
                Column("Applied", lambda e: human_time(e.applied_at, e.program.market.time_zone), "applied_at"),
                Column(
                    "Review deadline",
                    lambda e: human_time(e.review_deadline, e.program.market.time_zone) or "–",
                    "review_deadline",
                ),
            ),
            ordering="-applied_at",
            empty="No enrollments yet: enroll devices in a program through the API or the admin.",
            history=True,
            choices={"market": _market_codes},
        ),
        Listing(
            name="resources",
            title="Virtual resources",
            queryset=lambda: VirtualResource.objects.select_related("market", "program"),
            filterset=VirtualResourceFilter,
            filters=("market", "program", "state", "scope_kind"),
            search=("name", "scope", "market_resource_id"),
            columns=(
                Column("Resource", lambda r: r.name, "name", link=lambda r: reverse("console:resource", args=[r.pk])),
                Column("Market", lambda r: r.market.code, "market__code"),
                Column("Program", lambda r: r.program.code, "program__code"),
                Column("State", lambda r: r.state, "state"),
                Column("Scope", lambda r: f"{r.scope_kind} {r.scope}".strip()),
                Column("Registered", lambda r: with_unit(r.registered_capability_kw, "kW"), "registered_capability_kw"),
            ),
            ordering="name",
            empty="No virtual resources yet: build them in the admin's aggregation builder.",
            history=True,
        ),
        Listing(
            name="events",
            title="Dispatch events",
            queryset=lambda: DispatchEvent.objects.select_related("resource__market"),
            filterset=DispatchEventFilter,
            filters=("market", "resource", "state", "source"),
            search=("external_ref",),
            columns=(
                Column("Event", lambda e: e.pk, "id", link=lambda e: reverse("console:event", args=[e.pk])),
                Column("Reference", lambda e: e.external_ref or "–", "external_ref"),
                Column("Resource", lambda e: e.resource.name, "resource__name"),
                Column("State", lambda e: e.state, "state"),
                Column("Source", lambda e: e.source, "source"),
                Column("Start", lambda e: human_time(e.start, e.resource.market.time_zone), "start"),
                Column("End", lambda e: human_time(e.end, e.resource.market.time_zone), "end"),
            ),
            ordering="-start",
            empty="No events yet: create a test event on the Events page.",
            choices={"market": _market_codes},
        ),
        Listing(
            name="settlement-runs",
            title="Settlement runs",
            queryset=lambda: SettlementRun.objects.select_related("event__resource__market"),
            filterset=SettlementRunFilter,
            filters=("market", "event__resource", "kind"),
            search=("event__external_ref", "event__resource__name", "created_by"),
            columns=(
                Column("Run", lambda r: r.pk, "id", link=lambda r: reverse("console:statement", args=[r.pk])),
                Column(
                    "Event",
                    lambda r: r.event_id,
                    "event_id",
                    link=lambda r: reverse("console:event", args=[r.event_id]),
                ),
                Column("Resource", lambda r: r.event.resource.name, "event__resource__name"),
                Column("Version", lambda r: f"{r.version} ({r.kind})", "version"),
                Column("Created", lambda r: human_time(r.created_at, r.event.resource.market.time_zone), "created_at"),
                Column("Delivered", lambda r: with_unit(r.delivered_kwh, "kWh"), "delivered_kwh"),
                Column("Performance", lambda r: f"{r.performance_factor * 100:.1f} %", "performance_factor"),
                Column("Net", lambda r: f"{r.net:,.2f} {CURRENCY}", "net"),
            ),
            ordering="-created_at",
            empty="No settlement runs yet: events are settled after their meter-data deadline, or queue one from "
            "the API (POST /api/v1/settlement/runs/).",
            choices={"market": _market_codes},
        ),
    )
}


def _connection(charger: Charger) -> str:
    if not charger.connected:
        since = human_time(charger.disconnected_at, charger.device.site.market.time_zone)
        return f"disconnected since {since}" if since else "never connected"
    since = human_time(charger.connected_at, charger.device.site.market.time_zone)
    return f"{charger.get_protocol_display()} on {charger.node or '?'} since {since}"


def _last_message(charger: Charger) -> str:
    at = human_time(charger.last_message_at, charger.device.site.market.time_zone)
    return f"{charger.last_action} at {at}" if at else "none yet"


LISTINGS["ocpp-chargers"] = Listing(
    name="ocpp-chargers",
    title="OCPP chargers",
    queryset=lambda: Charger.objects.select_related("device__site__market").annotate(session_count=Count("sessions")),
    filterset=ChargerFilter,
    filters=("market", "connected", "protocol"),
    search=("identity", "vendor", "model", "firmware"),
    columns=(
        Column(
            "Identity",
            lambda c: c.identity,
            "identity",
            link=lambda c: reverse("admin:ocpp_charger_change", args=[c.pk]),
        ),
        Column("Device", lambda c: c.device_id, "device_id"),
        Column("Market", lambda c: c.device.site.market.code, "device__site__market__code"),
        Column("Connection", _connection, "connected_at"),
        Column("Last message", _last_message, "last_message_at"),
        Column("Boot", lambda c: f"{c.vendor} {c.model} {c.firmware}".strip() or "–"),
        Column(
            "Applies its profile",
            lambda c: {True: "yes", False: "no"}.get(c.applies_profile, "not known"),
            "applies_profile",
        ),
        Column(
            "Sessions",
            lambda c: c.session_count,
            "session_count",
            link=lambda c: f"{reverse('admin:ocpp_chargingsession_changelist')}?{urlencode({'q': c.identity})}",
        ),
    ),
    ordering="identity",
    empty="No OCPP chargers yet: issue an EV charger its password (manage.py ocpp_password <device>, or the admin) "
    "and point it at the OCPP server.",
    choices={"market": _market_codes},
)


def _url(name: str, **query) -> str:
    return f"{reverse('console:list', args=[name])}?{urlencode(query)}"


class _View:
    """What DRF's SearchFilter and OrderingFilter read from a view."""

    def __init__(self, listing: Listing):
        self.search_fields = listing.search
        self.ordering_fields = listing.ordering_fields
        self.ordering = [listing.ordering]


def rows(listing: Listing, query) -> tuple[Any, QuerySet]:
    """The listing's filter set bound to the query, and its rows filtered, searched and ordered."""
    filterset = listing.filterset(query, queryset=listing.queryset())
    if not filterset.is_valid():
        return filterset, listing.queryset().none()
    request, view = _DrfRequest(query), _View(listing)
    queryset = SearchFilter().filter_queryset(request, filterset.qs, view)
    queryset = OrderingFilter().filter_queryset(request, queryset, view)
    if not queryset.query.order_by or queryset.query.order_by[-1].lstrip("-") != "id":
        queryset = queryset.order_by(*queryset.query.order_by, "id")  # a stable order across pages
    return filterset, queryset


class _DrfRequest:
    def __init__(self, query):
        self.query_params = query


def _cells(listing: Listing, item) -> list[tuple[Any, str | None]]:
    return [(c.value(item), c.link(item) if c.link else None) for c in listing.columns]


@operator_page()
def object_list(request, name: str):
    listing = LISTINGS.get(name)
    if listing is None:
        raise Http404
    filterset, queryset = rows(listing, request.GET)
    if request.GET.get("format") == "csv" and not filterset.errors:
        return _csv(listing, queryset)
    paginator = CountedUpTo(queryset, PER_PAGE, request.GET.get("page") or 1)
    try:
        page = paginator.page(request.GET.get("page") or 1)
    except (EmptyPage, ValueError):
        page = paginator.page(paginator.num_pages if str(request.GET.get("page", "")).isdigit() else 1)
    form = filterset.form
    for field_name, options in listing.choices.items():
        form.fields[field_name].widget = forms.Select(choices=[("", "Any"), *options()])
    current = request.GET.get("ordering") or listing.ordering
    query = request.GET.copy()
    query.pop("page", None)
    headers = []
    for column in listing.columns:
        if column.order is None:
            headers.append((column.label, None, None))
            continue
        ascending = current == column.order
        sort = query.copy()
        sort["ordering"] = f"-{column.order}" if ascending else column.order
        state = "ascending" if ascending else "descending" if current == f"-{column.order}" else None
        headers.append((column.label, f"?{sort.urlencode()}", state))
    history = listing.queryset().model._meta.label_lower if listing.history else None
    anything = page.object_list or filterset.errors or any(v for k, v in request.GET.items() if k != "page")
    return render(
        request,
        "console/list.html",
        {
            "listing": listing,
            "fields": [form[f] for f in listing.filters],
            "errors": filterset.errors,
            "search": request.GET.get("search", ""),
            "headers": headers,
            "rows": [(item.pk, _cells(listing, item)) for item in page.object_list],
            "page": page,
            "query": query.urlencode(),
            "csv_query": urlencode({**query.dict(), "format": "csv"}),
            "history_model": history,
            "nothing_yet": not anything and not listing.queryset().exists(),
            "section": "lists",
            "list_links": [(item.name, item.title) for item in LISTINGS.values()],
        },
        status=400 if filterset.errors else 200,
    )


class _Echo:
    def write(self, value):
        return value


def _csv(listing: Listing, queryset: QuerySet) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        columns = [c for c in listing.columns if c.csv]
        yield writer.writerow([c.label for c in columns])
        for item in queryset.iterator(chunk_size=CSV_CHUNK):
            yield writer.writerow([safe_cell(str(c.value(item))) for c in columns])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{listing.name}.csv"'
    return response
