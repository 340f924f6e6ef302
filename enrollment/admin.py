from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from simple_history.admin import SimpleHistoryAdmin

from aggregator.core.access.roles import WRITE_ROLES, roles_of
from aggregator.core.admin_inlines import ReadOnlyInline
from aggregator.core.errors import DomainError
from enrollment import fleet_import, services
from enrollment.lifecycle import OPERATOR_ACTIONS, TRANSITIONS
from enrollment.models import (
    Consent,
    Customer,
    Device,
    DeviceCredential,
    Enrollment,
    EnrollmentTransition,
    Gateway,
    RetailProgramParticipation,
    Site,
)


class SiteInline(admin.TabularInline):
    model = Site
    fields = ["utility", "meter_id", "market", "pricing_node", "zone"]
    show_change_link = True
    extra = 0


class ConsentInline(ReadOnlyInline):
    model = Consent
    fields = ["kind", "program", "terms_version", "granted_at", "granted_by", "method", "revoked_at"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["external_ref", "name", "kind", "email", "created_at"]
    list_filter = ["kind"]
    search_fields = ["external_ref", "name", "email", "contact_name"]
    inlines = [SiteInline, ConsentInline]


@admin.register(Consent)
class ConsentAdmin(SimpleHistoryAdmin):
    list_display = ["customer", "kind", "program", "terms_version", "granted_at", "method", "revoked_at"]
    list_filter = ["kind", "method", "program"]
    search_fields = ["customer__external_ref", "customer__name", "granted_by"]
    raw_id_fields = ["customer"]
    readonly_fields = ["recorded_by", "recorded_at"]

    def get_readonly_fields(self, request, obj=None):
        # Evidence is never edited; only revocation can be recorded on an existing consent.
        if obj is not None:
            return [f.name for f in Consent._meta.fields if f.name != "revoked_at"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.recorded_by = request.user
        super().save_model(request, obj, form, change)


class DeviceInline(ReadOnlyInline):
    model = Device
    fields = ["device_type", "manufacturer", "model", "serial", "rated_kw"]
    show_change_link = True


class RetailProgramInline(admin.TabularInline):
    model = RetailProgramParticipation
    extra = 0


@admin.register(Site)
class SiteAdmin(SimpleHistoryAdmin):
    list_display = ["__str__", "customer", "market", "pricing_node", "zone", "time_zone"]
    list_filter = ["market", "utility", "zone"]
    search_fields = ["meter_id", "customer__external_ref", "customer__name", "address", "city", "pricing_node"]
    raw_id_fields = ["customer"]
    list_select_related = ["customer", "market"]
    inlines = [DeviceInline, RetailProgramInline]


class CredentialInline(ReadOnlyInline):
    model = DeviceCredential
    fk_name = "device"
    fields = ["key_id", "label", "created_at", "expires_at", "revoked_at", "last_used_at"]


class EnrollmentInline(ReadOnlyInline):
    model = Enrollment
    fields = ["program", "state", "applied_at", "review_deadline", "activated_at"]
    show_change_link = True


class FleetImportForm(forms.Form):
    file = forms.FileField(label="Fleet CSV", help_text="One row per device; see the template for the columns.")
    dry_run = forms.BooleanField(required=False, label="Check only (write nothing)")


def _can_write(request) -> bool:
    return bool(roles_of(request.user) & WRITE_ROLES)


@admin.register(Device)
class DeviceAdmin(SimpleHistoryAdmin):
    list_display = ["id", "device_type", "manufacturer", "model", "serial", "rated_kw", "site", "online", "last_seen"]
    list_filter = ["device_type", "communication_path", "site__market", "status__online"]
    search_fields = ["serial", "manufacturer", "model", "site__meter_id", "site__customer__external_ref"]
    raw_id_fields = ["site", "gateway"]
    list_select_related = ["site", "status"]
    inlines = [EnrollmentInline, CredentialInline]

    @admin.display(boolean=True, description="Online", ordering="status__online")
    def online(self, obj):
        status = getattr(obj, "status", None)
        return None if status is None else status.online

    @admin.display(description="Last seen", ordering="status__last_seen_at")
    def last_seen(self, obj):
        status = getattr(obj, "status", None)
        return status.last_seen_at if status else "never"

    actions = ["issue_credentials"]
    change_list_template = "admin/enrollment/device/change_list.html"

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="enrollment_device_import"),
            path(
                "import/template.csv",
                self.admin_site.admin_view(self.template_view),
                name="enrollment_device_import_template",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not _can_write(request):
            raise PermissionDenied
        report = None
        form = FleetImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            report = fleet_import.import_fleet(
                source=form.cleaned_data["file"].read(), dry_run=form.cleaned_data["dry_run"]
            )
            level = messages.SUCCESS if report.ok else messages.ERROR
            self.message_user(request, report.summary(), level)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "errors": report.errors[:1000] if report else [],
            "title": "Import a fleet from CSV",
            "template_url": reverse("admin:enrollment_device_import_template"),
        }
        return TemplateResponse(request, "admin/enrollment/device/import.html", context)

    def template_view(self, request):
        from django.http import HttpResponse

        response = HttpResponse(fleet_import.template_csv(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="fleet-template.csv"'
        return response

    @admin.action(description="Issue a new API token for the selected devices")
    def issue_credentials(self, request, queryset):
        if not _can_write(request):
            raise PermissionDenied
        issued = [
            (device, services.issue_credential(device=device, by=request.user, label="admin")[1])
            for device in queryset[:100]
        ]
        return render(
            request,
            "admin/enrollment/device/issued_tokens.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "issued": issued,
                "title": "New device tokens",
            },
        )


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    list_display = ["manufacturer", "model", "serial", "site"]
    search_fields = ["serial", "manufacturer"]
    raw_id_fields = ["site"]


@admin.register(DeviceCredential)
class DeviceCredentialAdmin(admin.ModelAdmin):
    list_display = ["key_id", "device", "gateway", "label", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["key_id", "device__serial", "gateway__serial"]
    readonly_fields = ["key_id", "device", "gateway", "created_at", "last_used_at", "issued_by"]
    exclude = ["digest"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # tokens are issued from a device or gateway, so the plaintext can be shown once

    @admin.action(description="Revoke the selected credentials")
    def revoke(self, request, queryset):
        for credential in queryset:
            services.revoke_credential(credential=credential)
        self.message_user(request, f"Revoked {queryset.count()} credential(s).")


class TransitionInline(ReadOnlyInline):
    model = EnrollmentTransition
    fields = ["at", "action", "from_state", "to_state", "actor_label", "reason"]


class TransitionForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    utility_reference = forms.CharField(required=False, max_length=100)


def _lifecycle_action(name):
    rule = TRANSITIONS[name]

    def handler(modeladmin, request, queryset):
        if not _can_write(request):
            raise PermissionDenied
        if "apply" in request.POST:
            form = TransitionForm(request.POST)
            if form.is_valid():
                try:
                    result = services.bulk_transition(
                        enrollment_ids=list(queryset.values_list("pk", flat=True)),
                        action=name,
                        by=request.user,
                        **form.cleaned_data,
                    )
                except DomainError as exc:
                    modeladmin.message_user(request, str(exc), messages.ERROR)
                    return None
                if result.done:
                    modeladmin.message_user(
                        request, f"{name.replace('_', ' ')}: {len(result.done)} enrollment(s).", messages.SUCCESS
                    )
                for pk, problems in list(result.refused.items())[:50]:
                    modeladmin.message_user(
                        request, f"#{pk}: " + "; ".join(p.message for p in problems), messages.ERROR
                    )
                return None
        else:
            form = TransitionForm()
        return render(
            request,
            "admin/enrollment/enrollment/transition.html",
            {
                **modeladmin.admin_site.each_context(request),
                "opts": modeladmin.model._meta,
                "form": form,
                "queryset": queryset,
                "action": name,
                "reason_required": rule.reason_required,
                "title": f"{name.replace('_', ' ').capitalize()} {queryset.count()} enrollment(s)",
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    handler.__name__ = f"action_{name}"
    return admin.action(description=f"{name.replace('_', ' ').capitalize()}…")(handler)


class EnrollmentForm(forms.ModelForm):
    """Adding an enrollment is applying: the eligibility rules show as form errors."""

    class Meta:
        model = Enrollment
        fields = ["device", "program"]

    def clean(self):
        data = super().clean()
        if data.get("device") and data.get("program"):
            for problem in services.check_eligibility(device=data["device"], program=data["program"]):
                self.add_error(None, problem.message)
        return data


@admin.register(Enrollment)
class EnrollmentAdmin(SimpleHistoryAdmin):
    form = EnrollmentForm
    list_display = [
        "id",
        "device",
        "program",
        "state",
        "applied_at",
        "review_deadline",
        "review_outcome",
        "activated_at",
    ]
    list_filter = ["state", "program", "review_outcome"]
    search_fields = [
        "device__serial",
        "device__site__meter_id",
        "device__site__customer__external_ref",
        "utility_reference",
    ]
    raw_id_fields = ["device"]
    list_select_related = ["device", "program__market"]
    readonly_fields = [f.name for f in Enrollment._meta.fields if not f.editable] + ["utility_reference"]
    inlines = [TransitionInline]
    actions = [_lifecycle_action(name) for name in OPERATOR_ACTIONS]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj.pk = services.apply(device=obj.device, program=obj.program, by=request.user).pk
