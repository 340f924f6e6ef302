from datetime import timedelta

from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from aggregator.core.errors import Problem
from aggregator.reference.models import Program
from enrollment import fleet_import, services
from enrollment.api import serializers as s
from enrollment.filtersets import CustomerFilter, DeviceFilter, EnrollmentFilter, SiteFilter
from enrollment.lifecycle import OPERATOR_ACTIONS
from enrollment.models import (
    Consent,
    Customer,
    Device,
    DeviceCredential,
    Enrollment,
    Gateway,
    RetailProgramParticipation,
    Site,
)


class CustomerViewSet(viewsets.ModelViewSet):
    queryset = Customer.objects.all()
    serializer_class = s.CustomerSerializer
    filterset_class = CustomerFilter
    search_fields = ["external_ref", "name", "email", "contact_name"]
    ordering_fields = ["external_ref", "name", "created_at"]


class ConsentViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Consents are evidence: recorded and revoked, never edited or deleted."""

    queryset = Consent.objects.all()
    serializer_class = s.ConsentSerializer
    filterset_fields = ["customer", "kind", "program", "terms_version"]
    ordering_fields = ["granted_at"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.grant_consent(
            customer=data["customer"],
            kind=data["kind"],
            program=data.get("program"),
            terms_version=data["terms_version"],
            granted_by=data["granted_by"],
            method=data["method"],
            granted_at=data.get("granted_at"),
            evidence_ref=data.get("evidence_ref", ""),
            by=self.request.user,
        )

    @extend_schema(request=None, responses=s.ConsentSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        consent = services.revoke_consent(consent=self.get_object())
        return Response(s.ConsentSerializer(consent).data)


class SiteViewSet(viewsets.ModelViewSet):
    queryset = Site.objects.select_related("market").annotate(device_count=Count("devices"))
    serializer_class = s.SiteSerializer
    filterset_class = SiteFilter
    search_fields = ["meter_id", "address", "city", "customer__name", "customer__external_ref"]
    ordering_fields = ["utility", "meter_id", "created_at"]


class RetailProgramParticipationViewSet(viewsets.ModelViewSet):
    queryset = RetailProgramParticipation.objects.all()
    serializer_class = s.RetailProgramParticipationSerializer
    filterset_fields = ["site", "kind"]


class GatewayViewSet(viewsets.ModelViewSet):
    queryset = Gateway.objects.all()
    serializer_class = s.GatewaySerializer
    filterset_fields = ["site", "manufacturer"]
    search_fields = ["serial", "manufacturer"]

    @extend_schema(request=s.IssueCredentialSerializer, responses={201: s.IssuedCredentialSerializer})
    @action(detail=True, methods=["post"])
    def credentials(self, request, pk=None):
        return _issue(request, gateway=self.get_object())


class DeviceViewSet(viewsets.ModelViewSet):
    queryset = Device.objects.all()
    serializer_class = s.DeviceSerializer
    filterset_class = DeviceFilter
    search_fields = ["serial", "manufacturer", "model"]
    ordering_fields = ["id", "rated_kw", "created_at"]

    @extend_schema(request=s.IssueCredentialSerializer, responses={201: s.IssuedCredentialSerializer})
    @action(detail=True, methods=["post"])
    def credentials(self, request, pk=None):
        """Issue a device token. The response is the only time it is shown."""
        return _issue(request, device=self.get_object())

    @extend_schema(
        parameters=[OpenApiParameter("program", int, required=True, description="Program id")],
        responses=s.EligibilitySerializer,
    )
    @action(detail=True, methods=["get"])
    def eligibility(self, request, pk=None):
        """Whether the device may enroll in a program, and every reason it may not."""
        device = self.get_object()
        program_id = request.query_params.get("program", "")
        if not program_id.isdigit():
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"program": ["A program id is required."]}, code="required")
        program = get_object_or_404(Program, pk=int(program_id))
        problems = services.check_eligibility(device=device, program=program)
        return Response(
            {
                "device": device.pk,
                "program": program.pk,
                "eligible": not problems,
                "problems": [p.as_dict() for p in problems],
            }
        )


def _issue(request, *, device=None, gateway=None):
    params = s.IssueCredentialSerializer(data=request.data)
    params.is_valid(raise_exception=True)
    credential, token = services.issue_credential(
        device=device, gateway=gateway, by=request.user, **params.validated_data
    )
    credential.token = token
    return Response(s.IssuedCredentialSerializer(credential).data, status=status.HTTP_201_CREATED)


class CredentialViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = DeviceCredential.objects.all()
    serializer_class = s.CredentialSerializer
    filterset_fields = ["device", "gateway"]

    @extend_schema(request=None, responses=s.CredentialSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        credential = services.revoke_credential(credential=self.get_object())
        return Response(s.CredentialSerializer(credential).data)

    @extend_schema(request=s.RotateCredentialSerializer, responses={201: s.IssuedCredentialSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        params = s.RotateCredentialSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        credential, token = services.rotate_credential(
            credential=self.get_object(),
            by=request.user,
            grace=timedelta(minutes=params.validated_data["grace_minutes"]),
        )
        credential.token = token
        return Response(s.IssuedCredentialSerializer(credential).data, status=status.HTTP_201_CREATED)


class EnrollmentViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Enrollments change state only through their lifecycle actions."""

    queryset = Enrollment.objects.all()
    serializer_class = s.EnrollmentSerializer
    filterset_class = EnrollmentFilter
    ordering_fields = ["applied_at", "review_deadline"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.apply(
            device=data["device"], program=data["program"], by=self.request.user, reason=data.get("reason", "")
        )

    @extend_schema(request=s.BulkApplySerializer, responses=s.BulkResultSerializer)
    @action(detail=False, methods=["post"], url_path="bulk-apply", filterset_class=None)
    def bulk_apply(self, request):
        """Enroll many devices in a program: eligible ones are enrolled, others refused with their reasons."""
        params = s.BulkApplySerializer(data=request.data)
        params.is_valid(raise_exception=True)
        result = services.bulk_apply(
            device_ids=params.validated_data["devices"],
            program=params.validated_data["program"],
            by=request.user,
            reason=params.validated_data["reason"],
        )
        return Response(_bulk_body(result))

    @extend_schema(request=s.BulkTransitionSerializer, responses=s.BulkResultSerializer)
    @action(detail=False, methods=["post"], url_path="bulk-transition", filterset_class=None)
    def bulk_transition(self, request):
        """Take one lifecycle action on many enrollments; those it does not apply to are refused with reasons."""
        params = s.BulkTransitionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        result = services.bulk_transition(
            enrollment_ids=data["enrollments"],
            action=data["action"],
            by=request.user,
            reason=data["reason"],
            utility_reference=data["utility_reference"],
        )
        missing = set(data["enrollments"]) - {e.pk for e in result.done} - set(result.refused)
        for pk in missing:
            result.refused[pk] = [Problem("not_found", f"No enrollment {pk}.", "enrollments")]
        return Response(_bulk_body(result))

    @extend_schema(responses=s.EnrollmentTransitionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def transitions(self, request, pk=None):
        return Response(s.EnrollmentTransitionSerializer(self.get_object().transitions.all(), many=True).data)


def _bulk_body(result) -> dict:
    return {
        "done": [e.pk for e in result.done],
        "refused": [
            {"id": pk, "errors": [p.as_dict() for p in problems]} for pk, problems in sorted(result.refused.items())
        ],
    }


def _transition_action(name):
    @extend_schema(
        request=s.TransitionRequestSerializer,
        responses=s.EnrollmentSerializer,
        summary=f"{name.replace('_', ' ')} the enrollment",
    )
    def handler(self, request, pk=None):
        params = s.TransitionRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        enrollment = services.transition(
            enrollment=self.get_object(), action=name, by=request.user, **params.validated_data
        )
        return Response(s.EnrollmentSerializer(enrollment).data)

    handler.__name__ = name
    return action(detail=True, methods=["post"], url_path=name.replace("_", "-"), filterset_class=None)(handler)


for _name in OPERATOR_ACTIONS:
    setattr(EnrollmentViewSet, _name, _transition_action(_name))


class FleetImportViewSet(viewsets.ViewSet):
    """Bulk import of a customer fleet from CSV: all rows are written, or none."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": s.FleetImportRequestSerializer},
        responses={
            201: s.FleetImportReportSerializer,
            200: s.FleetImportReportSerializer,
            # Rows refused: the report; the request itself refused (no file, not a boolean dry_run): the error body.
            400: {
                "oneOf": [
                    {"$ref": "#/components/schemas/FleetImportReport"},
                    {"$ref": "#/components/schemas/Error"},
                ]
            },
        },
    )
    def create(self, request):
        params = s.FleetImportRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        report = fleet_import.import_fleet(
            source=params.validated_data["file"].read(), dry_run=params.validated_data["dry_run"]
        )
        code = (
            status.HTTP_400_BAD_REQUEST
            if not report.ok
            else status.HTTP_200_OK
            if report.dry_run
            else status.HTTP_201_CREATED
        )
        return Response(report.as_dict(), status=code)

    @extend_schema(responses={(200, "text/csv"): str})
    @action(detail=False, methods=["get"])
    def template(self, request):
        response = HttpResponse(fleet_import.template_csv(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="fleet-template.csv"'
        return response
