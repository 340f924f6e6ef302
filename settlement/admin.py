from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from aggregator.core import charts
from aggregator.core.access.roles import WRITE_ROLES, roles_of
from aggregator.reference.models import EnergyPrice, Tariff
from dispatch.admin import DispatchEventAdmin
from dispatch.models import DispatchEvent
from settlement import pages
from settlement.models import (
    CapacityCommitment,
    CustomerPayout,
    MarketStatement,
    MeterDataImport,
    RetailEvent,
    SettlementRun,
    SettlementTerms,
    SiteCapacity,
)
from settlement.selectors import interval_totals
from settlement.tasks import import_meter_data


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Meter-data CSV", help_text="Columns: utility, meter_id, start, interval_seconds, kwh or kw, quality."
    )


@admin.register(MeterDataImport)
class MeterDataImportAdmin(admin.ModelAdmin):
    list_display = ["id", "file", "state", "rows", "created_by", "created_at", "finished_at"]
    list_filter = ["state"]
    readonly_fields = [
        "file",
        "state",
        "progress",
        "rows",
        "summary",
        "errors",
        "created_by",
        "created_at",
        "finished_at",
    ]
    exclude = ["report"]
    change_form_template = "admin/settlement/meterdataimport/change_form.html"

    def get_urls(self):
        return [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="settlement_meterdataimport_upload"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:settlement_meterdataimport_upload")

    def upload_view(self, request):
        if not roles_of(request.user) & WRITE_ROLES:
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            job = MeterDataImport.objects.create(file=form.cleaned_data["file"], created_by=request.user)
            import_meter_data.delay(job.pk)
            self.message_user(request, "The import is queued; this page shows its progress.", messages.SUCCESS)
            return redirect(reverse("admin:settlement_meterdataimport_change", args=[job.pk]))
        return TemplateResponse(
            request,
            "admin/settlement/meterdataimport/upload.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "form": form,
                "title": "Import meter data",
            },
        )

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.state in (MeterDataImport.State.DONE, MeterDataImport.State.REJECTED):
            return "finished"
        figures = cache.get(obj.progress_key)
        return f"{figures['done']:,} of {figures['total']:,} rows written" if figures else "checking the file"

    @admin.display(description="Summary")
    def summary(self, obj):
        r = obj.report or {}
        if "error" in r:
            return r["error"]
        if not r:
            return "-"
        if not r.get("ok"):
            return f"{r.get('error_count', 0)} problem(s) in {r.get('rows', 0)} row(s); nothing was written."
        return f"{r['rows']} row(s): {r['inserted']} new, {r['updated']} corrected, {r['unchanged']} unchanged."

    @admin.display(description="Problems by row")
    def errors(self, obj):
        rows = (obj.report or {}).get("errors", [])
        if not rows:
            return "-"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((e["row"], e["field"] or "", e["message"], e["code"]) for e in rows),
        )
        return format_html(
            '<table><thead><tr><th scope="col">Row</th><th scope="col">Column</th><th scope="col">Problem</th>'
            '<th scope="col">Code</th></tr></thead><tbody>{}</tbody></table>',
            body,
        )


@admin.register(EnergyPrice)
class EnergyPriceAdmin(admin.ModelAdmin):
    """Loaded with `manage.py import_prices`; read here."""

    list_display = ["market", "node", "start", "interval_minutes", "price_per_mwh", "imported_at"]
    list_filter = ["market"]
    search_fields = ["node"]
    date_hierarchy = "start"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SettlementTerms)
class SettlementTermsAdmin(admin.ModelAdmin):
    list_display = ["program", "baseline_method", "sharing_rule", "sharing_value", "fee_pct"]


class PayoutInline(admin.TabularInline):
    model = CustomerPayout
    fields = ["customer", "delivered_kwh", "gross", "fee", "net"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SettlementRun)
class SettlementRunAdmin(admin.ModelAdmin):
    """Runs are immutable versions: read here; a new version comes from `settle_due` or the service."""

    list_display = [
        "event",
        "version",
        "kind",
        "created_at",
        "performance_factor",
        "energy",
        "capacity",
        "penalty",
        "net",
        "statement",
    ]
    list_filter = ["kind"]
    inlines = [PayoutInline]

    @admin.display(description="Statement")
    def statement(self, obj):
        url = reverse("admin:settlement_settlementrun_statement", args=[obj.pk])
        return format_html('<a href="{}">HTML</a> · <a href="{}?format=csv">CSV</a>', url, url)

    def get_urls(self):
        return [
            path(
                "<int:run_id>/statement/",
                self.admin_site.admin_view(self.statement_view),
                name="settlement_settlementrun_statement",
            ),
            path("statements/", self.admin_site.admin_view(self.period_view), name="settlement_settlementrun_period"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(
            request, {**(extra_context or {}), "period_url": reverse("admin:settlement_settlementrun_period")}
        )

    def statement_view(self, request, run_id: int):
        """Every site's intervals with baseline, actual, reduction, price and the baseline days: the run's evidence."""
        run = SettlementRun.objects.select_related("event__resource__market").filter(pk=run_id).first()
        if run is None or not self.has_view_permission(request, run):
            raise PermissionDenied
        if request.GET.get("format") == "csv":
            return pages.statement_csv(run)
        return TemplateResponse(
            request,
            "admin/settlement/settlementrun/statement.html",
            {**self.admin_site.each_context(request), "title": f"Statement: {run}", **pages.statement_context(run)},
        )

    def period_view(self, request):
        """A statement for a period: a resource's settled events, or a customer's payouts (and their intervals)."""
        context, download = pages.period_context(request.GET)
        if download is not None:
            return download
        return TemplateResponse(
            request,
            "admin/settlement/settlementrun/period.html",
            {
                **self.admin_site.each_context(request),
                "title": "Settlement statements",
                "opts": self.model._meta,
                **context,
            },
        )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in SettlementRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin):
    """Tariff versions: paste or edit the definition (aggregator.reference.tariffs documents its form); it is checked whole on
    save, and its utility, code, name and effective date are read from it. Files load with `import_tariffs`."""

    list_display = ["utility", "code", "name", "effective_from", "created_at"]
    list_filter = ["utility"]
    search_fields = ["code", "name"]
    fields = ["definition", "utility", "code", "name", "effective_from"]
    readonly_fields = ["utility", "code", "name", "effective_from"]


# An event's admin page also shows how it settled: dispatch's admin, extended from here (settlement sits above it).
admin.site.unregister(DispatchEvent)


@admin.register(DispatchEvent)
class SettledDispatchEventAdmin(DispatchEventAdmin):
    extra_detail_fields = ("settlement",)

    @admin.display(description="Settlement (baseline vs actual)")
    def settlement(self, obj):
        """The latest settlement run's chart of the resource's baseline vs actual, with links to every version."""
        runs = list(obj.settlement_runs.order_by("-version"))
        if not runs:
            return "Not settled yet."
        links = format_html_join(
            " · ",
            '<a href="{}">version {} ({}, net ${})</a>',
            (
                (reverse("admin:settlement_settlementrun_statement", args=[r.pk]), r.version, r.kind, r.net)
                for r in runs
            ),
        )
        chart = charts.baseline_vs_actual(
            interval_totals(run=runs[0]),
            zone=ZoneInfo(obj.resource.market.time_zone),
            title=f"Event {obj.pk}: baseline vs actual, settlement version {runs[0].version}",
        )
        return format_html("{}<br>{}", chart, links)


@admin.register(RetailEvent)
class RetailEventAdmin(admin.ModelAdmin):
    """Retail demand-response events (loaded with manage.py import_retail_events): never baseline days."""

    list_display = ["site", "program", "start", "end", "imported_at"]
    list_filter = ["program"]
    search_fields = ["site__meter_id", "program"]
    raw_id_fields = ["site"]
    date_hierarchy = "start"


@admin.register(MarketStatement)
class MarketStatementAdmin(admin.ModelAdmin):
    """The market's settlement statements as imported (manage.py import_market_statement); read-only."""

    list_display = ["id", "resource", "file_name", "file_format", "imported_by", "imported_at"]
    list_filter = ["file_format"]
    readonly_fields = ["resource", "file_name", "file_format", "imported_by", "imported_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SiteCapacityInline(admin.TabularInline):
    model = SiteCapacity
    extra = 0
    raw_id_fields = ["site"]


@admin.register(CapacityCommitment)
class CapacityCommitmentAdmin(admin.ModelAdmin):
    """Capacity commitments (manage.py capacity_statement gives a month's payment, performance and charges)."""

    list_display = ["resource", "period_start", "period_end", "accredited_kw", "rate", "rate_unit", "measurement"]
    list_filter = ["rate_unit", "measurement"]
    inlines = [SiteCapacityInline]
