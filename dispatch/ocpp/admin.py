"""Back office for OCPP chargers: their connection, last message and sessions; passwords issued (shown once) and revoked."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from aggregator.core.access.roles import WRITE_ROLES, roles_of
from aggregator.core.errors import DomainError
from dispatch.ocpp import services
from dispatch.ocpp.models import Charger, ChargerCredential, ChargingSession


def _can_write(request) -> bool:
    return bool(roles_of(request.user) & WRITE_ROLES)


class ChargerForm(forms.ModelForm):
    class Meta:
        model = Charger
        fields = ["device"]


class CredentialInline(admin.TabularInline):
    model = ChargerCredential
    fields = ["key_id", "label", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class SessionInline(admin.TabularInline):
    model = ChargingSession
    fields = ["transaction_id", "connector", "started_at", "stopped_at", "energy_kwh", "stop_reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ["-started_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-started_at")


@admin.register(Charger)
class ChargerAdmin(admin.ModelAdmin):
    list_display = [
        "identity",
        "device",
        "protocol",
        "connected",
        "node",
        "last_message_at",
        "last_action",
        "vendor",
        "model",
        "firmware",
        "plan_answer",
    ]
    list_filter = ["protocol", "connected"]
    search_fields = ["identity", "vendor", "model"]
    raw_id_fields = ["device"]
    list_select_related = ["device"]
    inlines = [CredentialInline, SessionInline]
    actions = ["issue_passwords", "revoke_passwords"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ChargerForm
        return super().get_form(request, obj, **kwargs)

    def get_inline_instances(self, request, obj=None):
        return [] if obj is None else super().get_inline_instances(request, obj)  # adding is choosing the device

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f.name for f in Charger._meta.fields]

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            credential, password = services.issue_password(device=obj.device, by=request.user, label="admin")
        except DomainError as refused:
            raise ValidationError(refused.problems[0].message) from None
        obj.pk = credential.charger_id
        messages.warning(
            request,
            f"OCPP password for {credential.charger.identity} (shown once, store it now): {password}",
        )

    @admin.action(description="Issue a new OCPP password for the selected chargers (shown once)")
    def issue_passwords(self, request, queryset):
        if not _can_write(request):
            raise PermissionDenied
        for charger in queryset.select_related("device")[:100]:
            _, password = services.issue_password(device=charger.device, by=request.user, label="admin")
            messages.warning(request, f"OCPP password for {charger.identity} (shown once): {password}")

    @admin.action(description="Revoke every OCPP password of the selected chargers")
    def revoke_passwords(self, request, queryset):
        if not _can_write(request):
            raise PermissionDenied
        credentials = ChargerCredential.objects.filter(charger__in=queryset, revoked_at__isnull=True)
        for credential in credentials:
            services.revoke_password(credential=credential)
        messages.success(
            request, f"Revoked {len(credentials)} password(s); connected chargers are closed within a minute."
        )


@admin.register(ChargingSession)
class ChargingSessionAdmin(admin.ModelAdmin):
    list_display = ["charger", "transaction_id", "connector", "started_at", "stopped_at", "energy_kwh", "stop_reason"]
    list_filter = ["stopped_at"]
    search_fields = ["charger__identity", "transaction_id", "id_tag"]
    list_select_related = ["charger"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ChargingSession._meta.fields]

    def has_add_permission(self, request):
        return False
