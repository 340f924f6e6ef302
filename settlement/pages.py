"""Settlement pages' content, shared by the admin and the operator console: a run's statement and a period's."""

from zoneinfo import ZoneInfo

from django import forms
from django.http import HttpResponse

from aggregator.aggregation.models import VirtualResource
from aggregator.core import charts
from aggregator.core.csv_files import write_csv
from enrollment.models import Customer
from settlement import reconciliation, selectors
from settlement.models import SettlementRun


def csv_download(filename: str, header: list[str], rows: list[list]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    write_csv(response, header, rows)
    return response


class PeriodForm(forms.Form):
    resource = forms.ModelChoiceField(queryset=VirtualResource.objects.order_by("name"), required=False)
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.order_by("name"),
        required=False,
        widget=forms.NumberInput,
        help_text="A customer id (instead of a resource).",
    )
    date_from = forms.DateField(label="From", help_text="First day, in each event's market time (YYYY-MM-DD).")
    date_to = forms.DateField(label="To", help_text="Last day, inclusive.")
    detail = forms.ChoiceField(
        choices=[("events", "One line per event"), ("intervals", "Each site's intervals (customer)")],
        initial="events",
        required=False,
    )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if (data.get("resource") is None) == (data.get("customer") is None):
            self.add_error("resource", "Give either a resource or a customer.")
        if data["date_to"] < data["date_from"]:
            self.add_error("date_to", "To must not be before from.")
        elif (data["date_to"] - data["date_from"]).days > 366:
            self.add_error("date_to", "At most 366 days per statement.")
        if data.get("detail") == "intervals" and data.get("customer") is None:
            self.add_error("detail", "Intervals are listed for a customer.")
        return data


def statement_csv(run: SettlementRun) -> HttpResponse:
    header, rows = selectors.statement_rows(run=run)
    return csv_download(f"settlement-event{run.event_id}-v{run.version}.csv", header, rows)


def statement_context(run: SettlementRun) -> dict:
    """A run's figures, its chart of baseline vs actual, customers, every site's intervals and the other versions."""
    header, rows = selectors.statement_rows(run=run)
    totals = selectors.interval_totals(run=run)
    zone = ZoneInfo(run.event.resource.market.time_zone)
    return {
        "run": run,
        "header": header,
        "rows": rows,
        "totals": totals,
        "zone": zone,
        "payouts": run.payouts.select_related("customer").order_by("customer_id"),
        "chart": charts.baseline_vs_actual(
            totals, zone=zone, title=f"Event {run.event_id}: baseline vs actual, version {run.version}"
        ),
        "versions": SettlementRun.objects.filter(event_id=run.event_id).order_by("version"),
        "market_lines": reconciliation.for_run(run),
    }


def period_context(query) -> tuple[dict, HttpResponse | None]:
    """(page context, or the CSV download when the query asks format=csv) for a period statement form."""
    form = PeriodForm(query or None)
    context = {"form": form}
    if not (form.is_bound and form.is_valid()):
        return context, None
    data = form.cleaned_data
    first, last, resource, customer = data["date_from"], data["date_to"], data["resource"], data["customer"]
    if resource is not None:
        header, rows, totals = selectors.resource_statement(resource=resource, first=first, last=last)
        name, subject = f"resource{resource.pk}", f"{resource}"
    elif data["detail"] == "intervals":
        header, rows = selectors.customer_intervals(customer=customer, first=first, last=last)
        totals, name, subject = None, f"customer{customer.pk}-intervals", f"{customer.name} (intervals)"
    else:
        header, rows, totals = selectors.customer_statement(customer=customer, first=first, last=last)
        name, subject = f"customer{customer.pk}", customer.name
    if query.get("format") == "csv":
        return context, csv_download(f"statement-{name}-{first}-{last}.csv", header, rows)
    context.update(
        subject=subject,
        first=first,
        last=last,
        header=header,
        rows=rows,
        totals=totals,
        csv_query=query.urlencode() + "&format=csv",
    )
    return context, None
