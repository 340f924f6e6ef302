from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from aggregator.aggregation import services
from aggregator.aggregation.models import (
    AggregationProposal,
    ResourceMembership,
    ResourceModification,
    ResourceTransition,
    VirtualResource,
)
from aggregator.core.access.models import OperatorToken
from aggregator.core.admin_inlines import ReadOnlyInline
from aggregator.core.errors import DomainError
from aggregator.reference.models import Market, NetBenefitsPrice, OfferDeadline, Program, Utility


class OfferDeadlineInline(admin.TabularInline):
    model = OfferDeadline
    extra = 0


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    inlines = [OfferDeadlineInline]
    list_display = [
        "code",
        "name",
        "time_zone",
        "min_aggregation_kw",
        "multi_node_allowed",
        "utility_review_days",
        "settlement_interval_minutes",
    ]
    search_fields = ["code", "name"]


@admin.register(NetBenefitsPrice)
class NetBenefitsPriceAdmin(admin.ModelAdmin):
    """The markets' monthly net-benefits thresholds (loaded with manage.py import_net_benefits)."""

    list_display = ["market", "month", "price_per_mwh", "imported_at"]
    list_filter = ["market"]
    readonly_fields = ["imported_at"]

    def save_model(self, request, obj, form, change):
        obj.imported_at = timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(Utility)
class UtilityAdmin(admin.ModelAdmin):
    """Distribution utilities' Order 2222 standing: a small utility's opt-in, a regulator's opt-out of retail DR."""

    list_display = ["name", "state", "annual_sales_mwh", "small_utility_opt_in", "retail_dr_opt_out"]
    search_fields = ["name"]


@admin.register(Program)
class ProgramAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "market", "service", "terms_version", "is_open"]
    list_filter = ["market", "service", "is_open"]
    search_fields = ["code", "name"]


@admin.register(OperatorToken)
class OperatorTokenAdmin(admin.ModelAdmin):
    list_display = ["key_id", "user", "label", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["key_id", "user", "created_at", "last_used_at"]
    exclude = ["digest"]
    search_fields = ["key_id", "user__username"]

    def has_add_permission(self, request):
        return False  # issued with `manage.py issue_operator_token`, which shows the token once


class MembershipInline(ReadOnlyInline):
    model = ResourceMembership
    fields = ["device", "joined_at", "left_at"]
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(left_at__isnull=True).select_related("device")


class ResourceTransitionInline(ReadOnlyInline):
    model = ResourceTransition
    fields = ["at", "action", "from_state", "to_state", "actor_label", "reason"]


class ModificationInline(ReadOnlyInline):
    model = ResourceModification
    fields = ["at", "kind", "device", "capability_before_kw", "capability_after_kw", "actor_label", "reason"]


class VirtualResourceForm(forms.ModelForm):
    """Runs the service's rules in the form, so a refusal is a form error beside its field."""

    class Meta:
        model = VirtualResource
        fields = "__all__"  # noqa: DJ007  (the admin's fieldsets choose what is shown)

    def clean(self):
        data = super().clean()
        instance = self.instance if self.instance.pk else None
        market = data.get("market") or getattr(instance, "market", None)
        program = data.get("program") or getattr(instance, "program", None)
        if market is None or program is None:
            return data
        for problem in services.resource_problems(
            market=market,
            program=program,
            scope_kind=data.get("scope_kind") or instance.scope_kind,
            name=data.get("name", ""),
            max_kw=data.get("max_kw"),
            instance=instance,
        ):
            field = problem.field if problem.field in self.fields else None
            self.add_error(field, problem.message)
        return data


@admin.register(VirtualResource)
class VirtualResourceAdmin(SimpleHistoryAdmin):
    form = VirtualResourceForm
    list_display = ["name", "market", "program", "scope_kind", "scope", "state", "registered_capability_kw"]
    list_filter = ["market", "state", "scope_kind", "program"]
    search_fields = ["name", "scope", "market_resource_id"]
    readonly_fields = [
        "state",
        "registered_capability_kw",
        "capability_now",
        "submitted_at",
        "registered_at",
        "activated_at",
        "retired_at",
        "market_resource_id",
    ]
    inlines = [MembershipInline, ModificationInline, ResourceTransitionInline]

    @admin.display(description="Capability now (kW)")
    def capability_now(self, obj):
        return f"{services.capability_now(resource=obj):.1f}" if obj.pk else "-"

    def get_readonly_fields(self, request, obj=None):
        # Market, program and scope are fixed once created: members were checked against them.
        fixed = ["market", "program", "scope_kind", "scope"] if obj else []
        return [*self.readonly_fields, *fixed]

    def save_model(self, request, obj, form, change):
        if change:
            services.update_resource(resource=obj, name=obj.name, max_kw=obj.max_kw)
            return
        created = services.create_resource(
            market=obj.market,
            program=obj.program,
            name=obj.name,
            scope_kind=obj.scope_kind,
            scope=obj.scope,
            max_kw=obj.max_kw,
            participation_model=obj.participation_model,
            by=request.user,
        )
        obj.pk = created.pk


@admin.register(AggregationProposal)
class AggregationProposalAdmin(admin.ModelAdmin):
    list_display = ["id", "market", "program", "scope_kind", "state", "resource_count", "created_at", "seconds"]
    list_filter = ["market", "state"]
    readonly_fields = [
        "market",
        "program",
        "scope_kind",
        "max_kw",
        "event_hours",
        "state",
        "summary",
        "unplaced",
        "ineligible",
        "created_at",
        "created_by",
        "decided_at",
        "seconds",
    ]
    exclude = ["resources"]
    actions = ["accept"]

    def has_add_permission(self, request):
        return False  # built from the API or `manage.py build_aggregations`

    @admin.display(description="Resources")
    def resource_count(self, obj):
        return len(obj.resources)

    @admin.display(description="Proposed resources")
    def summary(self, obj):
        return (
            "; ".join(f"{r['name']}: {r['devices']} devices, {r['capability_kw']:.1f} kW" for r in obj.resources)
            or "none"
        )

    @admin.action(description="Accept the selected proposals (create the resources as drafts)")
    def accept(self, request, queryset):
        for proposal in queryset:
            try:
                created = services.accept_proposal(proposal=proposal, by=request.user)
                self.message_user(
                    request, f"Proposal {proposal.pk}: created {len(created)} resource(s).", messages.SUCCESS
                )
            except DomainError as exc:
                self.message_user(request, f"Proposal {proposal.pk}: {exc}", messages.ERROR)
