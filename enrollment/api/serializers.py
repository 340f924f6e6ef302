from rest_framework import serializers

from aggregator.core.api.fields import DateTimeField
from aggregator.core.api.serializers import ModelSerializer
from aggregator.reference.models import Program, validate_time_zone
from enrollment.device_types import PARAMETERS, parameter_problems
from enrollment.lifecycle import OPERATOR_ACTIONS, allowed_actions
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


class CustomerSerializer(ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "external_ref", "name", "kind", "contact_name", "email", "phone", "created_at", "updated_at"]


class ConsentSerializer(ModelSerializer):
    program = serializers.PrimaryKeyRelatedField(queryset=Program.objects.all(), required=False, allow_null=True)
    active = serializers.SerializerMethodField()

    class Meta:
        model = Consent
        fields = [
            "id",
            "customer",
            "kind",
            "program",
            "terms_version",
            "granted_at",
            "granted_by",
            "method",
            "evidence_ref",
            "revoked_at",
            "recorded_by",
            "recorded_at",
            "active",
        ]
        read_only_fields = ["revoked_at", "recorded_by", "recorded_at"]
        extra_kwargs = {"granted_at": {"required": False}}

    def get_active(self, obj) -> bool:
        return obj.revoked_at is None

    def validate(self, attrs):
        is_terms = attrs.get("kind") == Consent.Kind.PROGRAM_TERMS
        if is_terms and not attrs.get("program"):
            raise serializers.ValidationError(
                {"program": ["Program terms consent names its program."]}, code="required"
            )
        if not is_terms and attrs.get("program"):
            raise serializers.ValidationError(
                {"program": ["Only program terms consent names a program."]}, code="not_applicable"
            )
        return attrs


class RetailProgramParticipationSerializer(ModelSerializer):
    class Meta:
        model = RetailProgramParticipation
        fields = ["id", "site", "kind", "name", "starts_on", "ends_on"]

    def validate(self, attrs):
        starts, ends = attrs.get("starts_on"), attrs.get("ends_on")
        if starts and ends and ends < starts:
            raise serializers.ValidationError({"ends_on": ["ends_on cannot be before starts_on."]}, code="out_of_range")
        return attrs


class SiteSerializer(ModelSerializer):
    time_zone = serializers.CharField(
        required=False, validators=[validate_time_zone], help_text="IANA name; defaults to the market's time zone."
    )
    device_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Site
        fields = [
            "id",
            "customer",
            "name",
            "utility",
            "meter_id",
            "load_serving_entity",
            "retail_tariff",
            "weather_station",
            "market",
            "pricing_node",
            "zone",
            "time_zone",
            "address",
            "city",
            "region",
            "postal_code",
            "country",
            "latitude",
            "longitude",
            "device_count",
            "created_at",
            "updated_at",
        ]
        validators = []  # the meter's uniqueness is checked in validate(), naming the field

    def validate(self, attrs):
        utility = attrs.get("utility", getattr(self.instance, "utility", ""))
        meter_id = attrs.get("meter_id", getattr(self.instance, "meter_id", ""))
        if meter_id:
            duplicate = Site.objects.filter(utility=utility, meter_id=meter_id)
            if self.instance is not None:
                duplicate = duplicate.exclude(pk=self.instance.pk)
            if duplicate.exists():
                raise serializers.ValidationError(
                    {
                        "meter_id": [
                            serializers.ErrorDetail(f"{utility} already has a site with meter {meter_id}.", "unique")
                        ]
                    }
                )
        market = attrs.get("market") or getattr(self.instance, "market", None)
        if not attrs.get("time_zone") and self.instance is None and market is not None:
            attrs["time_zone"] = market.time_zone
        return attrs


class GatewaySerializer(ModelSerializer):
    class Meta:
        model = Gateway
        fields = ["id", "site", "manufacturer", "model", "serial", "created_at"]

    def validate(self, attrs):
        manufacturer = attrs.get("manufacturer", getattr(self.instance, "manufacturer", ""))
        serial = attrs.get("serial", getattr(self.instance, "serial", ""))
        duplicate = Gateway.objects.filter(manufacturer__iexact=manufacturer, serial=serial)
        if self.instance is not None:
            duplicate = duplicate.exclude(pk=self.instance.pk)
        if duplicate.exists():
            raise serializers.ValidationError(
                {"serial": ["A gateway with this manufacturer and serial already exists."]}, code="unique"
            )
        return attrs


class DeviceSerializer(ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "id",
            "site",
            "gateway",
            "device_type",
            "manufacturer",
            "model",
            "serial",
            "rated_kw",
            *PARAMETERS,
            "bidirectional",
            "charge_from_solar_only",
            "telemetry_interval_seconds",
            "communication_path",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs):
        merged = {
            name: getattr(self.instance, name)
            for name in self.Meta.fields
            if self.instance and hasattr(self.instance, name)
        }
        merged.update(attrs)
        errors: dict[str, list] = {}

        def add(field, message, code):
            errors.setdefault(field, []).append(serializers.ErrorDetail(message, code))

        for problem in parameter_problems(merged.get("device_type"), merged.get("rated_kw"), merged):
            add(problem.field, problem.message, problem.code)
        if merged.get("bidirectional") and merged.get("device_type") not in ("ev_charger", "battery"):
            add("bidirectional", "Only EV chargers and batteries can be bidirectional.", "not_applicable")
        duplicate = Device.objects.filter(
            manufacturer__iexact=merged.get("manufacturer", ""), serial=merged.get("serial", "")
        )
        if self.instance is not None:
            duplicate = duplicate.exclude(pk=self.instance.pk)
        if duplicate.exists():
            add("serial", "A device with this manufacturer and serial already exists.", "unique")
        gateway, site = merged.get("gateway"), merged.get("site")
        if gateway is not None and site is not None and gateway.site_id != site.pk:
            add("gateway", "The gateway is at another site.", "wrong_site")
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DeviceSelfSerializer(ModelSerializer):
    """What a device (or its gateway) sees of itself on the device API."""

    site = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = [
            "id",
            "device_type",
            "manufacturer",
            "model",
            "serial",
            "rated_kw",
            *PARAMETERS,
            "bidirectional",
            "telemetry_interval_seconds",
            "site",
        ]

    def get_site(self, obj) -> dict:
        return {"id": obj.site_id, "time_zone": obj.site.time_zone, "market": obj.site.market.code}


class EnrollmentTransitionSerializer(ModelSerializer):
    class Meta:
        model = EnrollmentTransition
        fields = ["id", "action", "from_state", "to_state", "at", "actor", "actor_label", "reason"]


class UndecidedAsNull(serializers.ChoiceField):
    """A blank choice ("not decided yet") on the wire as null, so the value is always one of the enum or null."""

    def to_representation(self, value):
        return None if value == "" else super().to_representation(value)


class EnrollmentSerializer(ModelSerializer):
    allowed_actions = serializers.SerializerMethodField()
    review_outcome = UndecidedAsNull(
        choices=Enrollment._meta.get_field("review_outcome").choices,
        read_only=True,
        allow_null=True,
        help_text="The utility review's outcome; null until it is decided.",
    )
    reason = serializers.CharField(write_only=True, required=False, allow_blank=True)

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "device",
            "program",
            "state",
            "allowed_actions",
            "applied_at",
            "review_started_at",
            "review_deadline",
            "review_outcome",
            "review_decided_at",
            "utility_reference",
            "activated_at",
            "ended_at",
            "updated_at",
            "reason",
        ]
        read_only_fields = ["utility_reference"]
        validators = []  # services.apply decides, with the domain's reasons (and the database's unique index)

    def get_allowed_actions(self, obj) -> list[str]:
        return allowed_actions(obj.state)


class TransitionRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    utility_reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)


class BulkApplySerializer(serializers.Serializer):
    program = serializers.PrimaryKeyRelatedField(queryset=Program.objects.all())
    devices = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=10_000)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class BulkTransitionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=OPERATOR_ACTIONS)
    enrollments = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=10_000)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    utility_reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)


class BulkRefusalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())


class BulkResultSerializer(serializers.Serializer):
    done = serializers.ListField(child=serializers.IntegerField(), help_text="Enrollment ids created or moved.")
    refused = BulkRefusalSerializer(many=True, help_text="Device (apply) or enrollment (transition) ids, with reasons.")


class EligibilityProblemSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class EligibilitySerializer(serializers.Serializer):
    device = serializers.IntegerField()
    program = serializers.IntegerField()
    eligible = serializers.BooleanField()
    problems = EligibilityProblemSerializer(many=True)


class CredentialSerializer(ModelSerializer):
    usable = serializers.SerializerMethodField()

    class Meta:
        model = DeviceCredential
        fields = [
            "id",
            "key_id",
            "device",
            "gateway",
            "label",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "usable",
        ]
        read_only_fields = fields

    def get_usable(self, obj) -> bool:
        return obj.is_usable()


class IssuedCredentialSerializer(CredentialSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; only its hash is stored.")

    class Meta(CredentialSerializer.Meta):
        fields = [*CredentialSerializer.Meta.fields, "token"]
        read_only_fields = fields


class IssueCredentialSerializer(serializers.Serializer):
    label = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    expires_at = DateTimeField(required=False, allow_null=True, default=None)


class RotateCredentialSerializer(serializers.Serializer):
    grace_minutes = serializers.IntegerField(required=False, default=0, min_value=0, max_value=60 * 24 * 30)


class FleetImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The fleet CSV; see GET /api/v1/fleet-imports/template.")
    dry_run = serializers.BooleanField(required=False, default=False)


class FleetImportRowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class FleetImportReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    rows = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    written = serializers.BooleanField()
    created = serializers.DictField(child=serializers.IntegerField())
    updated = serializers.DictField(child=serializers.IntegerField())
    errors = FleetImportRowErrorSerializer(many=True)
    seconds = serializers.DictField(child=serializers.FloatField())


ACTIONS = OPERATOR_ACTIONS
