"""Dispatch on the device API: poll for commands, acknowledge, opt out, report what was delivered.

Commands carry absolute UTC times: a device that polls late executes only what is
left (`schedule` entries whose end has not passed) and never a command past
`expires_at`. `poll_after_seconds` in each poll answer says when to poll again.
"""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.core.access.devices import DeviceAPIMixin
from aggregator.core.api.fields import AwareDateTimeField
from aggregator.core.api.parsers import ORJSONParser
from dispatch import push, services
from dispatch.api import poll
from dispatch.models import DeviceCommand, DeviceSchedule, PushEndpoint


def _own_command(request, command_id) -> DeviceCommand:
    """The caller's command, or 404 (another device's command does not exist for it)."""
    command = DeviceCommand.objects.filter(pk=command_id, device__in=request.user.devices()).first()
    if command is None:
        raise exceptions.NotFound("No such command.")
    return command


class CommandsView(DeviceAPIMixin, APIView):
    """GET the caller's live commands (a gateway gets those of every device behind it, or ?device=).

    Served by dispatch.api.poll, bypassing DRF's request handling (see there why); this
    class carries the endpoint's description for the OpenAPI schema.
    """

    def dispatch(self, request, *args, **kwargs):
        if request.method == "GET":
            return poll.poll(request)
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        parameters=[OpenApiParameter("device", int, description="Gateway tokens: one device only")],
        responses=inline_serializer(
            "CommandPoll",
            {
                "commands": serializers.ListField(child=serializers.DictField()),
                "poll_after_seconds": serializers.IntegerField(),
                "server_time": serializers.DateTimeField(),
            },
        ),
    )
    def get(self, request):
        return poll.poll(request._request)


class AckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["accepted", "rejected"])
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class CommandAckView(DeviceAPIMixin, APIView):
    """POST accepted or rejected (with a reason) for a command; repeating the same answer is harmless."""

    parser_classes = [ORJSONParser]

    @extend_schema(
        request=AckSerializer,
        responses=inline_serializer("CommandAck", {"id": serializers.UUIDField(), "status": serializers.CharField()}),
    )
    def post(self, request, command_id):
        params = AckSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        command = services.acknowledge(command=_own_command(request, command_id), **params.validated_data)
        return Response({"id": command.pk, "status": command.status})


class OptOutSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    until = AwareDateTimeField(required=False, help_text="Default: the end of the command's event.")


class CommandOptOutView(DeviceAPIMixin, APIView):
    """POST the customer's override of a command: the device leaves the event, others replace it."""

    parser_classes = [ORJSONParser]

    @extend_schema(
        request=OptOutSerializer,
        responses=inline_serializer(
            "OptOut",
            {
                "device": serializers.IntegerField(),
                "start": serializers.DateTimeField(),
                "end": serializers.DateTimeField(),
            },
        ),
    )
    def post(self, request, command_id):
        params = OptOutSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        command = _own_command(request, command_id)
        now = timezone.now()
        end = params.validated_data.get("until") or command.expires_at
        record = services.opt_out(
            device_id=command.device_id,
            start=now,
            end=end,
            reason=params.validated_data["reason"],
            event=command.event,
            now=now,
        )
        return Response({"device": record.device_id, "start": record.start, "end": record.end})


class StandingOptOutSerializer(OptOutSerializer):
    device = serializers.IntegerField(required=False, help_text="Required for gateway tokens.")
    start = AwareDateTimeField(required=False, help_text="Default: now.")
    until = AwareDateTimeField()


class OptOutView(DeviceAPIMixin, APIView):
    """POST an override ahead of (or during) any event: the device serves nothing in [start, until)."""

    parser_classes = [ORJSONParser]

    @extend_schema(
        request=StandingOptOutSerializer,
        responses={
            201: inline_serializer(
                "StandingOptOut",
                {
                    "device": serializers.IntegerField(),
                    "start": serializers.DateTimeField(),
                    "end": serializers.DateTimeField(),
                },
            )
        },
    )
    def post(self, request):
        params = StandingOptOutSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        device = data.get("device", request.user.device_id)
        if device is None or not request.user.devices().filter(pk=device).exists():
            raise exceptions.ValidationError({"device": ["Name one of your devices."]}, code="unknown_device")
        now = timezone.now()
        start = data.get("start") or now
        record = services.opt_out(device_id=device, start=start, end=data["until"], reason=data["reason"], now=now)
        return Response({"device": record.device_id, "start": record.start, "end": record.end}, status=201)


class ReportItemSerializer(serializers.Serializer):
    interval_start = AwareDateTimeField()
    delivered_kw = serializers.FloatField(
        min_value=-1e6, max_value=1e6, help_text="kW of reduction the device measured over the interval (average)."
    )


class ReportSerializer(serializers.Serializer):
    reports = ReportItemSerializer(many=True, allow_empty=False, max_length=300)


class CommandReportView(DeviceAPIMixin, APIView):
    """POST execution telemetry: kW delivered per interval of the command's event (a resend replaces)."""

    parser_classes = [ORJSONParser]

    @extend_schema(
        request=ReportSerializer,
        responses=inline_serializer("DeliveryReportResult", {"stored": serializers.IntegerField()}),
    )
    def post(self, request, command_id):
        params = ReportSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        command = _own_command(request, command_id)
        stored = services.report_delivery(
            command=command,
            reports=[(r["interval_start"], r["delivered_kw"]) for r in params.validated_data["reports"]],
        )
        return Response({"stored": stored})


class PushEndpointSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=500, help_text="Your https endpoint; new commands are posted to it, signed.")


class PushEndpointView(DeviceAPIMixin, APIView):
    """Register (PUT), read (GET) or remove (DELETE) the caller's push endpoint.

    A device token registers the device's endpoint, a gateway token the gateway's (it then
    receives the commands of all its devices). The answer to PUT carries the signing key:
    check `X-VPP-Signature: t=<unix>,v1=<hex HMAC-SHA256(key, "<t>." + body)>` on each push.
    Polling goes on regardless; a push only arrives sooner.
    """

    parser_classes = [ORJSONParser]

    def _owner(self, request) -> dict:
        if request.user.device_id is not None:
            return {"device_id": request.user.device_id, "gateway_id": None}
        return {"device_id": None, "gateway_id": request.user.gateway_id}

    @extend_schema(
        responses=inline_serializer(
            "PushEndpoint",
            {
                "url": serializers.URLField(),
                "last_success_at": serializers.DateTimeField(allow_null=True),
                "last_failure_at": serializers.DateTimeField(allow_null=True),
                "last_error": serializers.CharField(),
            },
        )
    )
    def get(self, request):
        endpoint = PushEndpoint.objects.filter(**self._owner(request)).first()
        if endpoint is None:
            raise exceptions.NotFound("No push endpoint registered.")
        return Response(
            {
                "url": endpoint.url,
                "last_success_at": endpoint.last_success_at,
                "last_failure_at": endpoint.last_failure_at,
                "last_error": endpoint.last_error,
            }
        )

    @extend_schema(
        request=PushEndpointSerializer,
        responses=inline_serializer(
            "PushRegistration", {"url": serializers.URLField(), "signing_key": serializers.CharField()}
        ),
    )
    def put(self, request):
        params = PushEndpointSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint, key = push.register(url=params.validated_data["url"], **self._owner(request))
        return Response({"url": endpoint.url, "signing_key": key})

    @extend_schema(responses={204: None})
    def delete(self, request):
        PushEndpoint.objects.filter(**self._owner(request)).delete()
        return Response(status=204)


class ScheduleView(DeviceAPIMixin, APIView):
    """GET the caller's standing battery plans (today's and later, by the site's local day).

    Each plan gives kW per interval (+ discharge, - charge) from `start` every
    `step_seconds`, made to cut the site's bill and never below `reserve_kwh`. A dispatch
    command overrides the plan inside its window: `overridden_by` lists the caller's live
    commands' windows, and a device follows the command there and the plan elsewhere.
    """

    @extend_schema(
        responses=inline_serializer("Schedules", {"schedules": serializers.ListField(child=serializers.DictField())})
    )
    def get(self, request):
        from datetime import timedelta

        now = timezone.now()
        devices = request.user.devices()
        plans = DeviceSchedule.objects.filter(device__in=devices, start__gte=now - timedelta(days=1, hours=2)).order_by(
            "device_id", "day"
        )
        live = DeviceCommand.objects.filter(
            device__in=devices,
            status__in=[DeviceCommand.Status.PENDING, DeviceCommand.Status.ACCEPTED],
            expires_at__gt=now,
        ).exclude(kind=DeviceCommand.Kind.CANCEL)
        windows: dict[int, list] = {}
        for command in live:
            windows.setdefault(command.device_id, []).append(
                {"command": str(command.id), "start": command.not_before, "end": command.expires_at}
            )
        out = []
        for plan in plans:
            end = plan.start + timedelta(seconds=plan.step_seconds * len(plan.kw))
            if end <= now:
                continue
            out.append(
                {
                    "device": plan.device_id,
                    "day": plan.day,
                    "start": plan.start,
                    "step_seconds": plan.step_seconds,
                    "kw": plan.kw,
                    "energy_kwh": plan.energy_kwh,
                    "reserve_kwh": plan.reserve_kwh,
                    "overridden_by": [
                        w for w in windows.get(plan.device_id, []) if w["start"] < end and w["end"] > plan.start
                    ],
                }
            )
        return Response({"schedules": out})
