"""Event performance: per device and per site delivered against allocated energy, the worst under-deliverers and the
customers affected (and every device as CSV); a season's summary per program."""

import csv

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from aggregator.core.csv_files import safe_cell
from aggregator.web.console.access import operator_page
from dispatch import performance
from dispatch.models import DispatchEvent

WORST = 20
SITES = 100
CSV_COLUMNS = [
    "device_id",
    "device_type",
    "site_id",
    "meter",
    "customer_ref",
    "customer_name",
    "reason",
    "allocated_kwh",
    "delivered_kwh",
    "shortfall_kwh",
    "delivered_share",
]


@operator_page()
def event_performance(request, pk: int):
    event = DispatchEvent.objects.select_related("resource__market", "resource__program").filter(pk=pk).first()
    if event is None:
        raise Http404
    devices = performance.device_performance(event=event)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="event-{event.pk}-performance.csv"'
        writer = csv.writer(response)
        writer.writerow(CSV_COLUMNS)
        writer.writerows([safe_cell(d[c]) for c in CSV_COLUMNS] for d in devices)
        return response
    sites = performance.site_performance(devices)
    allocated = sum(d["allocated_kwh"] for d in devices)
    delivered = sum(d["delivered_kwh"] for d in devices)
    short = [d for d in devices if d["shortfall_kwh"] > 0]
    customers: dict[int, dict] = {}
    for d in short:
        c = customers.setdefault(
            d["customer_id"], {"ref": d["customer_ref"], "name": d["customer_name"], "devices": 0, "shortfall_kwh": 0.0}
        )
        c["devices"] += 1
        c["shortfall_kwh"] += d["shortfall_kwh"]
    return render(
        request,
        "console/event_performance.html",
        {
            "item": event,
            "zone": event.resource.market.time_zone,
            "totals": {
                "devices": len(devices),
                "allocated_kwh": allocated,
                "delivered_kwh": delivered,
                "share": delivered / allocated if allocated else None,
                "short_devices": len(short),
                "customers": len({d["customer_id"] for d in devices}),
            },
            "worst": short[:WORST],
            "sites": sites[:SITES],
            "site_count": len(sites),
            "customers_short": sorted(customers.values(), key=lambda c: -c["shortfall_kwh"])[:WORST],
            "customers_short_count": len(customers),
            "section": "events",
        },
    )


@operator_page()
def season(request):
    """Per program, events starting in a calendar year on its market's clock (this year unless ?year=)."""
    given = request.GET.get("year", "")
    year = int(given) if given.isdigit() and 1900 <= int(given) <= 9999 else timezone.now().year
    rows = performance.season_summary(year=year)
    return render(
        request,
        "console/season.html",
        {"rows": rows, "year": year, "section": "events", "any": any(r["events"] for r in rows)},
    )
