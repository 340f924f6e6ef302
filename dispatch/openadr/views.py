"""The VTN's HTTP interface: programs, events, reports, subscriptions, vens and their resources.

The same views serve OpenADR 3.0.1 and 3.1 at their own base paths over the same objects: each
view has the `version` of its base path, reads bodies with that version's schema and answers
with that version's representation (openadr.schema, openadr.representation). 3.1 adds the
top-level /resources (venID in the body) and /notifiers.

Who sees what, in both: a business-logic client reads everything; a VEN client reads every
program, the events targeted at its VEN (or at nobody in particular), and only its own VEN,
resources, reports and subscriptions. Another client's object answers 404, as if absent. A VEN
client does not set the targets of its VEN and resources (3.1's rule, applied to both): targets
decide which events it reads, so business logic sets them.
"""

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.core.errors import DomainError, Problem
from dispatch.openadr import mapping, notify, schema, selectors
from dispatch.openadr import representation as rep
from dispatch.openadr.auth import BearerAuthentication, HasScope, Principal
from dispatch.openadr.models import V301, Client, Event, Program, Report, Resource, Subscription, Ven
from enrollment.models import Device

MAX_LIMIT = 50


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


def not_found(request, *args, **kwargs):
    """A path under the VTN's base path that names no operation: the problem object, not an HTML page."""
    return rep.problem(404, "not_found", f"No operation at {request.path}.", request=request)


@extend_schema(exclude=True)  # described by the OpenADR Alliance's own OpenAPI definition, not ours
class VtnView(APIView):
    authentication_classes = [BearerAuthentication]
    permission_classes = [HasScope]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    scopes: dict[str, str] = {}
    version = V301  # set per base path (urls.py)
    read_scope: str | None = "read_ven_objects"  # 3.1's scope for reads (3.0.1: read_all)

    def get_exception_handler(self):
        return rep.problem_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL stores no NUL character and no lone surrogate (it is not UTF-8): a filter or a field
        # holding one would fail its query.
        problems = [
            Problem("nul_character", "No NUL character.", name)
            for name, values in request.query_params.lists()
            if any(not _storable(value) for value in values)
        ]
        if request.method in ("POST", "PUT"):
            problems += [
                Problem("unstorable_character", "No NUL character and no lone UTF-16 surrogate.", path)
                for path in _unstorable_paths(request.data)
            ]
        if problems:
            raise schema.Invalid(problems)

    @property
    def principal(self) -> Principal:
        return self.request.user

    def clean(self, clean_object) -> dict:
        """The request's body read by the version's schema (schema.clean_*)."""
        return clean_object(self.request.data, self.version)

    def out(self, describe, obj, **kwargs) -> dict:
        """The object in the version's representation (representation.*)."""
        return describe(obj, version=self.version, **kwargs)


# --- helpers ----------------------------------------------------------------------------------


def _page(request, queryset):
    problems = []
    bounds = {}
    # skip is bounded too: PostgreSQL's OFFSET is a bigint, and a larger one fails the query.
    for name, default, maximum in (("skip", 0, schema.INT32), ("limit", MAX_LIMIT, MAX_LIMIT)):
        raw = request.query_params.get(name)
        try:
            value = default if raw in (None, "") else int(raw)
        except ValueError:
            value = None
        if value is None or value < 0 or (maximum is not None and value > maximum):
            problems.append(Problem("invalid", f"An integer from 0{f' to {maximum}' if maximum else ''}.", name))
        bounds[name] = value
    if problems:
        raise schema.Invalid(problems)
    return queryset[bounds["skip"] : bounds["skip"] + bounds["limit"]]


def _targeted(request, queryset, version: str = V301):
    """Objects with a target holding any of targetValues, of type targetType where it is given (the
    definition makes neither parameter depend on the other); targetType alone: a target of that type.
    3.1: objects with any of the `targets` strings (and targetType / targetValues as in 3.0.1, which
    3.1 clients still send)."""
    if version != V301 and (strings := request.query_params.getlist("targets")):
        match = Q()
        for target in schema.targets_from_strings(strings):
            match |= Q(targets__contains=[target])
        queryset = queryset.filter(match)
    target_type = request.query_params.get("targetType")
    values = request.query_params.getlist("targetValues")
    if not target_type and not values:
        return queryset
    if not values:
        return queryset.filter(targets__contains=[{"type": target_type}])
    match = Q()
    for value in values:
        match |= Q(targets__contains=[{"type": target_type, "values": [value]} if target_type else {"values": [value]}])
    return queryset.filter(match)


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON's \ud800 escapes can carry
        return False
    return True


def _unstorable_paths(value, path: str = "") -> list[str]:
    """Where a decoded JSON body holds a string PostgreSQL cannot store, by its path (`intervals[0].id`)."""
    if isinstance(value, str):
        return [path] if not _storable(value) else []
    if isinstance(value, dict):
        return [
            p
            for key, item in value.items()
            for p in (
                [path or None] if not _storable(key) else _unstorable_paths(item, f"{path}.{key}" if path else key)
            )
        ]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _unstorable_paths(item, f"{path}[{index}]")]
    return []


def _id(value: str) -> int | None:
    # str.isdigit() also holds for digits int() does not read (superscripts such as "³").
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


def _get(queryset, object_id: str, what: str):
    pk = _id(object_id)
    obj = queryset.filter(pk=pk).first() if pk is not None else None
    if obj is None:
        raise NotFound(Problem("not_found", f"No {what} {object_id} here.", None))
    return obj


def _program(program_id: str | None, field: str = "programID") -> Program:
    pk = _id(program_id or "")
    program = Program.objects.filter(pk=pk).first() if pk is not None else None
    if program is None:
        raise schema.Invalid(Problem("unknown", f"No program {program_id}.", field))
    return program


def _own(principal: Principal, queryset, field: str = "client"):
    return queryset.filter(**{field: principal.client}) if principal.is_ven else queryset


def _unique(save, message: str, field: str, refusal: type[DomainError] = Conflict):
    try:
        with transaction.atomic():
            return save()
    except IntegrityError:
        raise refusal(Problem("conflict", message, field)) from None


def _delete(obj, what: str):
    try:
        with transaction.atomic():
            obj.delete()
    except ProtectedError:
        # 400, not 409: the definitions document 409 for creates and updates only.
        raise schema.Invalid(Problem("in_use", f"This {what} still has objects that refer to it.", None)) from None


# --- programs ---------------------------------------------------------------------------------


def _program_fields(data: dict) -> dict:
    body = {k: v for k, v in data.items() if k not in ("programName", "targets")}
    return {"program_name": data["programName"], "targets": data["targets"], "body": body}


class ProgramsView(VtnView):
    read_scope = "read_targets"
    scopes = {"POST": "write_programs"}

    def get(self, request):
        programs = _targeted(request, Program.objects.order_by("pk"), self.version)
        return Response([self.out(rep.program, p) for p in _page(request, programs)])

    def post(self, request):
        data = self.clean(schema.clean_program)
        program = _unique(
            lambda: Program.objects.create(**_program_fields(data)),
            f"A program named {data['programName']} exists.",
            "programName",
        )
        notify.changed("PROGRAM", "CREATE", program)
        return Response(self.out(rep.program, program), status=201)


class ProgramView(VtnView):
    read_scope = "read_targets"
    scopes = {"PUT": "write_programs", "DELETE": "write_programs"}

    def get(self, request, object_id):
        return Response(self.out(rep.program, _get(Program.objects.all(), object_id, "program")))

    def put(self, request, object_id):
        program = _get(Program.objects.all(), object_id, "program")
        data = self.clean(schema.clean_program)
        for key, value in _program_fields(data).items():
            setattr(program, key, value)
        program.modified_at = timezone.now()
        _unique(program.save, f"A program named {data['programName']} exists.", "programName")
        notify.changed("PROGRAM", "UPDATE", program)
        return Response(self.out(rep.program, program))

    def delete(self, request, object_id):
        program = _get(Program.objects.all(), object_id, "program")
        bodies = rep.in_each_version(rep.program, program)
        _delete(program, "program")
        notify.deleted("PROGRAM", bodies, program_id=program.pk, targets=program.targets)
        return Response(bodies[self.version])


# --- events -----------------------------------------------------------------------------------


def _event_fields(data: dict) -> dict:
    body = {k: v for k, v in data.items() if k not in ("programID", "eventName", "priority", "targets")}
    return {
        "program": _program(data["programID"]),
        "event_name": data["eventName"],
        "priority": data["priority"],
        "targets": data["targets"],
        "target_keys": schema.target_keys(data["targets"]),
        "body": body,
    }


class EventsView(VtnView):
    read_scope = "read_targets"
    scopes = {"POST": "write_events"}

    def get(self, request):
        events = selectors.visible_events(self.principal.client, Event.live.select_related("resource").order_by("pk"))
        if program_id := request.query_params.get("programID"):
            events = events.filter(program_id=_id(program_id) or 0)
        events = list(_page(request, _targeted(request, events, self.version)))
        mapping.mark_read(self.principal, events)
        return Response([self.out(rep.event, e) for e in events])

    def post(self, request):
        data = self.clean(schema.clean_event)
        event = Event.objects.create(**_event_fields(data))
        notify.changed("EVENT", "CREATE", event)
        return Response(self.out(rep.event, event), status=201)


class EventView(VtnView):
    read_scope = "read_targets"
    scopes = {"PUT": "write_events", "DELETE": "write_events"}

    def _event(self, object_id) -> Event:
        return _get(selectors.visible_events(self.principal.client, Event.live.all()), object_id, "event")

    def _writable(self, object_id) -> Event:
        event = self._event(object_id)
        if event.dispatch_event_id is not None:
            # 409 on an update, 400 on a delete: the statuses the definitions document for each.
            refusal = Conflict if self.request.method == "PUT" else schema.Invalid
            raise refusal(
                Problem(
                    "managed_by_dispatch",
                    "This event carries a dispatch event's allocation; change the "
                    "dispatch event instead (it updates this one).",
                    None,
                )
            )
        return event

    def get(self, request, object_id):
        event = self._event(object_id)
        mapping.mark_read(self.principal, [event])
        return Response(self.out(rep.event, event))

    def put(self, request, object_id):
        event = self._writable(object_id)
        data = self.clean(schema.clean_event)
        for key, value in _event_fields(data).items():
            setattr(event, key, value)
        event.modified_at = timezone.now()
        event.save()
        notify.changed("EVENT", "UPDATE", event)
        return Response(self.out(rep.event, event))

    def delete(self, request, object_id):
        event = self._writable(object_id)
        bodies, readers = rep.in_each_version(rep.event, event), selectors.event_readers(event)
        event.remove()
        notify.deleted("EVENT", bodies, program_id=event.program_id, targets=event.targets, readers=readers)
        return Response(bodies[self.version])


# --- reports ----------------------------------------------------------------------------------


def _report_fields(principal: Principal, data: dict) -> dict:
    event_pk = _id(data["eventID"])
    event = (
        selectors.visible_events(principal.client, Event.live.all()).filter(pk=event_pk).first()
        if event_pk is not None
        else None
    )
    if event is None:
        raise schema.Invalid(Problem("unknown", f"No event {data['eventID']} for this client.", "eventID"))
    if data["programID"] is not None and str(event.program_id) != data["programID"]:  # optional in 3.1
        raise schema.Invalid(
            Problem("mismatch", f"Event {event.pk} belongs to program {event.program_id}.", "programID")
        )
    body = {k: v for k, v in data.items() if k not in ("programID", "eventID", "clientName", "reportName")}
    return {
        "program_id": event.program_id,
        "event": event,
        "client_name": data["clientName"],
        "report_name": data["reportName"],
        "body": body,
    }


class ReportsView(VtnView):
    scopes = {"POST": "write_reports"}

    def get(self, request):
        reports = _own(self.principal, Report.objects.select_related("client").order_by("pk"))
        for param, field in (("programID", "program_id"), ("eventID", "event_id")):
            if value := request.query_params.get(param):
                reports = reports.filter(**{field: _id(value) or 0})
        if client_name := request.query_params.get("clientName"):
            reports = reports.filter(client_name=client_name)
        return Response([self.out(rep.report, r) for r in _page(request, reports)])

    def post(self, request):
        data = self.clean(schema.clean_report)
        with transaction.atomic():
            report = Report.objects.create(
                **_report_fields(self.principal, data), client=self.principal.client, ven=self.principal.ven
            )
            mapping.ingest_report(report)
        notify.changed("REPORT", "CREATE", report)
        return Response(self.out(rep.report, report), status=201)


class ReportView(VtnView):
    scopes = {"PUT": "write_reports", "DELETE": "write_reports"}

    def _report(self, object_id) -> Report:
        return _get(_own(self.principal, Report.objects.select_related("client")), object_id, "report")

    def get(self, request, object_id):
        return Response(self.out(rep.report, self._report(object_id)))

    def put(self, request, object_id):
        report = self._report(object_id)
        data = self.clean(schema.clean_report)
        with transaction.atomic():
            for key, value in _report_fields(self.principal, data).items():
                setattr(report, key, value)
            report.modified_at = timezone.now()
            report.save()
            mapping.ingest_report(report)
        notify.changed("REPORT", "UPDATE", report)
        return Response(self.out(rep.report, report))

    def delete(self, request, object_id):
        report = self._report(object_id)
        bodies = rep.in_each_version(rep.report, report)
        _delete(report, "report")
        notify.deleted("REPORT", bodies, program_id=report.program_id, targets=None, readers={report.client_id})
        return Response(bodies[self.version])


# --- subscriptions ------------------------------------------------------------------------------


def _subscription_fields(data: dict) -> dict:
    for i, operation in enumerate(data["objectOperations"]):
        notify.check_callback(operation["callbackUrl"], f"objectOperations[{i}].callbackUrl")
    return {
        "program": _program(data["programID"]) if data["programID"] is not None else None,  # optional in 3.1
        "client_name": data["clientName"],
        "object_operations": data["objectOperations"],
        "targets": data["targets"],
    }


class SubscriptionsView(VtnView):
    scopes = {"POST": "write_subscriptions"}

    def get(self, request):
        subscriptions = _own(self.principal, Subscription.objects.select_related("client").order_by("pk"))
        if program_id := request.query_params.get("programID"):
            subscriptions = subscriptions.filter(program_id=_id(program_id) or 0)
        if client_name := request.query_params.get("clientName"):
            subscriptions = subscriptions.filter(client_name=client_name)
        for obj in request.query_params.getlist("objects"):
            subscriptions = subscriptions.filter(object_operations__contains=[{"objects": [obj]}])
        subscriptions = _page(request, _targeted(request, subscriptions, self.version))
        return Response(
            [self.out(rep.subscription, s, reader_client_id=self.principal.client.pk) for s in subscriptions]
        )

    def post(self, request):
        data = self.clean(schema.clean_subscription)
        subscription = Subscription.objects.create(
            **_subscription_fields(data), client=self.principal.client, version=self.version
        )
        notify.changed("SUBSCRIPTION", "CREATE", subscription)
        return Response(self.out(rep.subscription, subscription), status=201)


class SubscriptionView(VtnView):
    scopes = {"PUT": "write_subscriptions", "DELETE": "write_subscriptions"}

    def _subscription(self, object_id) -> Subscription:
        return _get(_own(self.principal, Subscription.objects.select_related("client")), object_id, "subscription")

    def get(self, request, object_id):
        return Response(
            self.out(rep.subscription, self._subscription(object_id), reader_client_id=self.principal.client.pk)
        )

    def put(self, request, object_id):
        subscription = self._subscription(object_id)
        data = self.clean(schema.clean_subscription)
        for key, value in _subscription_fields(data).items():
            setattr(subscription, key, value)
        subscription.version = self.version  # its notifications speak the version it was last written through
        subscription.modified_at = timezone.now()
        subscription.save()
        notify.changed("SUBSCRIPTION", "UPDATE", subscription)
        return Response(self.out(rep.subscription, subscription))

    def delete(self, request, object_id):
        subscription = self._subscription(object_id)
        bodies = rep.in_each_version(rep.subscription, subscription)
        _delete(subscription, "subscription")
        return Response(bodies[self.version])


# --- vens and their resources -----------------------------------------------------------------


def _own_vens(principal: Principal):
    vens = Ven.objects.select_related("client").prefetch_related("resources").order_by("pk")
    return vens.filter(client=principal.client) if principal.is_ven else vens


def _own_resources(principal: Principal):
    resources = Resource.objects.select_related("ven__client").order_by("pk")
    return resources.filter(ven__client=principal.client) if principal.is_ven else resources


def _save_resource(principal: Principal, ven: Ven, data: dict, resource: Resource | None = None) -> Resource:
    resource = resource or Resource(ven=ven)
    resource.resource_name, resource.attributes = data["resourceName"], data["attributes"]
    if not principal.is_ven:  # targets decide which events a VEN reads: business logic sets them
        resource.targets = data["targets"]
    resource.modified_at = timezone.now()
    if resource.device_id is None:
        resource.device = mapping.device_for(ven, resource.resource_name)
        if resource.device is not None:  # it takes part in dispatch through its VEN from now on
            Device.objects.filter(pk=resource.device.pk).update(communication_path=Device.CommunicationPath.OPENADR3)
    _unique(resource.save, f"VEN {ven.ven_name} has a resource named {data['resourceName']}.", "resourceName")
    return resource


def _ven_client(principal: Principal, data: dict, version: str) -> Client | None:
    """The VEN client a new VEN is: the caller if it is one; for business logic, 3.1's clientID if given."""
    if principal.is_ven:
        return principal.client
    client_id = data.get("clientID")
    if client_id is None and version != V301:  # 3.1's VEN names its client, and business logic gives it
        raise schema.Invalid(Problem("required", "The VEN client this VEN is (its client_id).", "clientID"))
    if client_id is None:
        return None
    client = Client.objects.filter(client_id=client_id, role=Client.Role.VEN, ven__isnull=True).first()
    if client is None:
        raise schema.Invalid(Problem("unknown", f"No VEN client {client_id} without a VEN.", "clientID"))
    return client


class VensView(VtnView):
    scopes = {"POST": "write_vens"}

    def get(self, request):
        vens = _own_vens(self.principal)
        if ven_name := request.query_params.get("venName"):
            vens = vens.filter(ven_name=ven_name)
        return Response([self.out(rep.ven, v) for v in _page(request, _targeted(request, vens, self.version))])

    def post(self, request):
        data = self.clean(schema.clean_ven)
        principal = self.principal
        # 3.1 documents no 409 for a new VEN: its refusals are 400s there.
        refusal = Conflict if self.version == V301 else schema.Invalid
        if principal.is_ven and principal.ven is not None:
            raise refusal(Problem("already_registered", f"This client is VEN {principal.ven.ven_name}.", "venName"))
        client = _ven_client(principal, data, self.version)
        with transaction.atomic():
            ven = _unique(
                lambda: Ven.objects.create(
                    ven_name=data["venName"],
                    attributes=data["attributes"],
                    targets=None if principal.is_ven else data["targets"],
                    client=client,
                    site_id=client.site_id if client is not None else None,
                ),
                f"A VEN named {data['venName']} exists.",
                "venName",
                refusal,
            )
            for resource in data["resources"] or []:
                _save_resource(principal, ven, resource)
        notify.changed("VEN", "CREATE", ven)
        return Response(self.out(rep.ven, ven), status=201)


class VenView(VtnView):
    scopes = {"PUT": "write_vens", "DELETE": "write_vens"}

    def get(self, request, object_id):
        return Response(self.out(rep.ven, _get(_own_vens(self.principal), object_id, "VEN")))

    def put(self, request, object_id):
        ven = _get(_own_vens(self.principal), object_id, "VEN")
        data = self.clean(schema.clean_ven)
        ven.ven_name, ven.attributes = data["venName"], data["attributes"]
        if not self.principal.is_ven:  # targets decide which events a VEN reads: business logic sets them
            ven.targets = data["targets"]
        ven.modified_at = timezone.now()
        _unique(ven.save, f"A VEN named {data['venName']} exists.", "venName")
        notify.changed("VEN", "UPDATE", ven)
        return Response(self.out(rep.ven, ven))

    def delete(self, request, object_id):
        ven = _get(_own_vens(self.principal), object_id, "VEN")
        bodies = rep.in_each_version(rep.ven, ven)
        _delete(ven, "VEN")
        return Response(bodies[self.version])


def _resources_filtered(request, resources, version: str):
    if name := request.query_params.get("resourceName"):
        resources = resources.filter(resource_name=name)
    return _page(request, _targeted(request, resources, version))


class ResourcesView(VtnView):
    """3.0.1's resources of a VEN, under its path."""

    scopes = {"POST": "write_vens"}

    def get(self, request, ven_id):
        ven = _get(_own_vens(self.principal), ven_id, "VEN")
        resources = _resources_filtered(
            request, ven.resources.select_related("ven__client").order_by("pk"), self.version
        )
        return Response([self.out(rep.resource, r) for r in resources])

    def post(self, request, ven_id):
        ven = _get(_own_vens(self.principal), ven_id, "VEN")
        resource = _save_resource(self.principal, ven, self.clean(schema.clean_resource))
        notify.changed("RESOURCE", "CREATE", resource)
        return Response(self.out(rep.resource, resource), status=201)


class ResourceView(VtnView):
    scopes = {"PUT": "write_vens", "DELETE": "write_vens"}

    def _resource(self, ven_id, object_id) -> Resource:
        ven = _get(_own_vens(self.principal), ven_id, "VEN")
        return _get(ven.resources.all(), object_id, "resource")

    def get(self, request, ven_id, object_id):
        return Response(self.out(rep.resource, self._resource(ven_id, object_id)))

    def put(self, request, ven_id, object_id):
        resource = self._resource(ven_id, object_id)
        resource = _save_resource(self.principal, resource.ven, self.clean(schema.clean_resource), resource)
        notify.changed("RESOURCE", "UPDATE", resource)
        return Response(self.out(rep.resource, resource))

    def delete(self, request, ven_id, object_id):
        resource = self._resource(ven_id, object_id)
        bodies = rep.in_each_version(rep.resource, resource)
        _delete(resource, "resource")
        return Response(bodies[self.version])


class TopResourcesView(VtnView):
    """3.1's resources, at the top level: the VEN is named by venID (a filter, and in a new resource's body)."""

    scopes = {"POST": "write_vens"}

    def get(self, request):
        resources = _own_resources(self.principal)
        if ven_id := request.query_params.get("venID"):
            resources = resources.filter(ven_id=_id(ven_id) or 0)
        return Response([self.out(rep.resource, r) for r in _resources_filtered(request, resources, self.version)])

    def post(self, request):
        data = self.clean(schema.clean_resource)
        if data.get("venID") is None:
            raise schema.Invalid(Problem("required", "This field is required.", "venID"))
        ven = _get(_own_vens(self.principal), data["venID"], "VEN")
        resource = _save_resource(self.principal, ven, data)
        notify.changed("RESOURCE", "CREATE", resource)
        return Response(self.out(rep.resource, resource), status=201)


class TopResourceView(VtnView):
    scopes = {"PUT": "write_vens", "DELETE": "write_vens"}

    def _resource(self, object_id) -> Resource:
        return _get(_own_resources(self.principal), object_id, "resource")

    def get(self, request, object_id):
        return Response(self.out(rep.resource, self._resource(object_id)))

    def put(self, request, object_id):
        resource = self._resource(object_id)
        data = self.clean(schema.clean_resource)
        if data.get("venID") not in (None, str(resource.ven_id)):
            raise schema.Invalid(Problem("immutable", "A resource stays with its VEN.", "venID"))
        resource = _save_resource(self.principal, resource.ven, data, resource)
        notify.changed("RESOURCE", "UPDATE", resource)
        return Response(self.out(rep.resource, resource))

    def delete(self, request, object_id):
        resource = self._resource(object_id)
        bodies = rep.in_each_version(rep.resource, resource)
        _delete(resource, "resource")
        return Response(bodies[self.version])


class NotifiersView(VtnView):
    """3.1's notifier bindings: which ways of notifying subscribers the VTN offers."""

    read_scope = None  # any client's token: a VEN needs to know as much as business logic

    def get(self, request):
        return Response(rep.notifiers())
