"""Dispatch in the admin: create an event (through the service's rules), watch it, cancel it."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from aggregator.aggregation.models import VirtualResource
from aggregator.core.admin_inlines import ReadOnlyInline
from aggregator.core.errors import DomainError
from dispatch import overrides, resilience, selectors, services
from dispatch.models import (
    AllocationRound,
    CustomerNotification,
    DeviceCommand,
    DispatchEvent,
    EventInterval,
    EventTransition,
    MarketCredential,
    PushEndpoint,
    StormWatch,
    UtilityOverride,
)


class IntervalInline(ReadOnlyInline):
    model = EventInterval
    fields = ["start", "end", "target_kw"]


class TransitionInline(ReadOnlyInline):
    model = EventTransition
    fields = ["at", "action", "from_state", "to_state", "actor_label", "reason"]


class RoundInline(ReadOnlyInline):
    model = AllocationRound
    fields = ["number", "created_at", "reason", "first_interval", "target_kw", "allocated_kw", "devices", "seconds"]


class EventForm(forms.ModelForm):
    """A flat target over the window; the service checks the window, overlaps and capability."""

    target_kw = forms.DecimalField(
        max_digits=12, decimal_places=3, min_value=0, help_text="kW over the whole window (hourly intervals)."
    )

    class Meta:
        model = DispatchEvent
        fields = [
            "resource",
            "source",
            "target_kind",
            "notify_at",
            "start",
            "end",
            "ramp_seconds",
            "over_commit_pct",
            "external_ref",
        ]

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.fields["resource"].queryset = VirtualResource.objects.select_related("market")
        self.fields["notify_at"].required = False
        self.fields["over_commit_pct"].required = False

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.instance = services.create_event(
                resource=data["resource"],
                source=data["source"],
                start=data["start"],
                end=data["end"],
                by=self.request.user,
                target_kw=data["target_kw"],
                notify_at=data.get("notify_at"),
                target_kind=data["target_kind"],
                ramp_seconds=data["ramp_seconds"],
                over_commit_pct=data.get("over_commit_pct"),
                external_ref=data.get("external_ref") or "",
            )
        except DomainError as exc:
            for problem in exc.problems:
                field = problem.field.split("[")[0] if problem.field else None
                self.add_error(field if field in self.fields else None, problem.message)
        return data


@admin.register(DispatchEvent)
class DispatchEventAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "resource",
        "source",
        "state",
        "start",
        "end",
        "allocation_round",
        "commands_issued_round",
        "created_by_label",
    ]
    list_filter = ["state", "source", "resource__market"]
    search_fields = ["external_ref", "resource__name"]
    date_hierarchy = "start"
    inlines = [IntervalInline, RoundInline, TransitionInline]
    actions = ["cancel_events"]
    readonly_fields = ["target_vs_delivered"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            form = EventForm

            class WithRequest(form):
                def __init__(self, *args, **kw):
                    super().__init__(*args, request=request, **kw)

            return WithRequest
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return [
                "resource",
                "source",
                "target_kind",
                "notify_at",
                "start",
                "end",
                "target_kw",
                "ramp_seconds",
                "over_commit_pct",
                "external_ref",
            ]
        return [
            "resource",
            "source",
            "external_ref",
            "state",
            "notify_at",
            "start",
            "end",
            "ramp_seconds",
            "over_commit_pct",
            "warnings",
            "target_vs_delivered",
            *self.extra_detail_fields,
        ]

    # Read-only figures that apps above dispatch add to an event's page (settlement: its runs' chart).
    extra_detail_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []

    def save_model(self, request, obj, form, change):
        """The form's clean() already created the event through the service."""

    @admin.display(description="Target vs delivered (kW)")
    def target_vs_delivered(self, obj):
        rows = selectors.target_vs_delivered(event=obj)
        return "; ".join(
            f"{r['start']:%H:%M}Z target {r['target_kw']:g}, allocated {r['allocated_kw']:g}, "
            f"delivered {'-' if r['delivered_kw'] is None else format(r['delivered_kw'], 'g')} "
            f"({r['reporting_devices']} reporting)"
            for r in rows
        )

    @admin.action(description="Cancel the selected events (devices get cancel commands)")
    def cancel_events(self, request, queryset):
        done = 0
        for event in queryset:
            try:
                services.cancel(event=event, by=request.user, reason="Cancelled from the admin.", now=timezone.now())
                done += 1
            except DomainError as exc:
                self.message_user(request, f"Event {event.pk}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"Cancelled {done} event(s).", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DeviceCommand)
class DeviceCommandAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event",
        "device",
        "sequence",
        "kind",
        "status",
        "created_at",
        "delivered_at",
        "acknowledged_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["=event__id", "=device__id"]
    readonly_fields = [f.name for f in DeviceCommand._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CustomerNotification)
class CustomerNotificationAdmin(admin.ModelAdmin):
    list_display = ["event", "customer", "kind", "channel", "status", "created_at"]
    list_filter = ["channel", "status", "kind"]
    readonly_fields = [f.name for f in CustomerNotification._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(MarketCredential)
class MarketCredentialAdmin(admin.ModelAdmin):
    list_display = ["key_id", "market", "source", "label", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["key_id", "market", "source", "created_at", "last_used_at"]
    exclude = ["digest"]

    def has_add_permission(self, request):
        return False  # issued with `manage.py issue_market_token`, which shows the token once


@admin.register(PushEndpoint)
class PushEndpointAdmin(admin.ModelAdmin):
    """Registered by the devices themselves (PUT /api/device/v1/push); operators see health and may remove one."""

    list_display = ["url", "device", "gateway", "last_success_at", "last_failure_at", "last_error"]
    readonly_fields = ["device", "gateway", "url", "created_at", "last_success_at", "last_failure_at", "last_error"]
    search_fields = ["url"]

    def has_add_permission(self, request):
        return False  # the device registers it, and is told its signing key then


class StormWatchForm(forms.ModelForm):
    class Meta:
        model = StormWatch
        fields = ["market", "zone", "pricing_nodes", "start", "end", "reason"]

    def clean(self):

        data = super().clean()
        if not self.errors:
            for problem in resilience.problems(
                zone=data.get("zone", ""),
                pricing_nodes=data.get("pricing_nodes") or [],
                start=data["start"],
                end=data["end"],
                reason=data.get("reason", ""),
                now=timezone.now(),
            ):
                self.add_error(problem.field if problem.field in self.fields else None, problem.message)
        return data


@admin.register(StormWatch)
class StormWatchAdmin(admin.ModelAdmin):
    """Declared here (or on the API); a declared watch is changed only by cancelling it."""

    list_display = ["__str__", "market", "start", "end", "devices", "events", "created_by_label", "cancelled_at"]
    list_filter = ["market"]
    actions = ["cancel_watches"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = StormWatchForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else [f.name for f in StormWatch._meta.fields]

    def save_model(self, request, obj, form, change):

        if change:
            return
        watch = resilience.declare(
            market=obj.market,
            zone=obj.zone,
            pricing_nodes=obj.pricing_nodes,
            start=obj.start,
            end=obj.end,
            reason=obj.reason,
            by=request.user,
        )  # the form checked what declare checks
        obj.pk = watch.pk
        messages.success(
            request,
            f"{watch.devices} devices stay home until {watch.end:%Y-%m-%d %H:%M %Z}; they left {watch.events} events.",
        )

    @admin.action(description="Cancel the selected storm watches now")
    def cancel_watches(self, request, queryset):

        for watch in queryset:
            resilience.cancel(watch=watch)
        messages.success(request, f"Cancelled {queryset.count()} storm watch(es).")


@admin.register(UtilityOverride)
class UtilityOverrideAdmin(admin.ModelAdmin):
    """Distribution utilities' blocks and caps (made on /api/utility/v1/overrides); operators see and may cancel
    them on the utility's word."""

    list_display = ["__str__", "utility", "market", "start", "end", "cap_kw", "created_by_label", "cancelled_at"]
    list_filter = ["market", "utility"]
    actions = ["cancel_overrides"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel the selected overrides now")
    def cancel_overrides(self, request, queryset):
        for override in queryset:
            overrides.cancel(override=override)
        messages.success(request, f"Cancelled {queryset.count()} override(s).")
