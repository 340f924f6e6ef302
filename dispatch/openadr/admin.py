"""Back office for the VTN: client credentials (issued here or with `manage.py openadr_client`), VENs and
their resources' devices, programs' platform mapping; events, reports and subscriptions to inspect."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from aggregator.core.errors import DomainError
from dispatch.openadr import auth, profiles
from dispatch.openadr.models import Client, Event, Program, Report, Resource, Subscription, Ven


class ClientForm(forms.ModelForm):
    class Meta:
        model = Client
        fields = ["client_id", "role", "site", "label"]


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["client_id", "role", "site", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["client_id", "label"]
    raw_id_fields = ["site"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ClientForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return (
            []
            if obj is None
            else ["client_id", "role", "site", "key_id", "created_at", "last_used_at", "revoked_at", "issued_by"]
        )

    def get_exclude(self, request, obj=None):
        return ["digest", "key_id", "expires_at", "revoked_at", "issued_by"] if obj is None else ["digest"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        try:
            client, secret = auth.issue_client(
                client_id=obj.client_id, role=obj.role, site=obj.site, by=request.user, label=obj.label
            )
        except DomainError as refused:
            raise ValidationError(refused.problems[0].message) from None
        obj.pk = client.pk
        messages.warning(request, f"Client secret for {client.client_id} (shown once, store it now): {secret}")

    @admin.action(description="Revoke the selected clients and their tokens")
    def revoke(self, request, queryset):
        for client in queryset:
            auth.revoke_client(client)
        messages.success(request, f"Revoked {queryset.count()} client(s).")


class ResourceInline(admin.TabularInline):
    model = Resource
    fields = ["resource_name", "device", "signal", "created_at"]
    readonly_fields = ["resource_name", "created_at"]
    raw_id_fields = ["device"]
    extra = 0


@admin.register(Ven)
class VenAdmin(admin.ModelAdmin):
    list_display = ["ven_name", "site", "client", "created_at"]
    search_fields = ["ven_name"]
    raw_id_fields = ["site"]
    readonly_fields = ["ven_name", "client", "attributes", "targets", "created_at", "modified_at"]
    exclude = ["body"]
    inlines = [ResourceInline]


class ProgramForm(forms.ModelForm):
    profile = forms.ChoiceField(choices=[("", "None"), *profiles.CHOICES], required=False)

    class Meta:
        model = Program
        fields = ["platform_program", "profile"]


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    """Operators map an OpenADR program onto a platform program, optionally checking it against a field profile."""

    form = ProgramForm
    list_display = ["program_name", "platform_program", "profile", "created_at"]
    readonly_fields = ["program_name", "targets", "body", "created_at", "modified_at"]
    actions = ["check_profile"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.profile:
            self._report_profile(request, obj)

    def _report_profile(self, request, program):
        found = profiles.check(program=program, profile=program.profile)
        label = profiles.PROFILES[program.profile].label
        if not found:
            self.message_user(request, f"{program}: complies with {label}.", messages.SUCCESS)
            return
        listed = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in found)
        self.message_user(request, f"{program}: {len(found)} finding(s) for {label}: {listed}", messages.WARNING)

    @admin.action(description="Check against their field profile")
    def check_profile(self, request, queryset):
        for program in queryset:
            if program.profile:
                self._report_profile(request, program)
            else:
                self.message_user(request, f"{program}: no profile chosen.", messages.INFO)


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnly):
    list_display = ["id", "event_name", "program", "dispatch_event", "resource", "modified_at"]
    list_filter = ["program"]


@admin.register(Report)
class ReportAdmin(ReadOnly):
    list_display = ["id", "client_name", "event", "ven", "created_at"]


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnly):
    list_display = ["id", "client_name", "program", "client", "created_at"]
