"""The specification's JSON form of each VTN object, and the problem objects of its errors.

An optional field the VTN holds no value for is left out, not sent as null: the definitions
mark most of them not nullable, and leaving one out is valid wherever it is optional.
"""

from http import HTTPStatus

from django.http import JsonResponse

from aggregator.core.api.errors import exception_handler as platform_handler
from dispatch.openadr.models import V301, VERSIONS, Event, Program, Report, Resource, Subscription, Ven
from dispatch.openadr.schema import format_datetime, targets_as_strings


def without_nulls(value):
    """The JSON value with every object member whose value is null left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _stamp(obj, object_type: str) -> dict:
    return {
        "id": str(obj.pk),
        "createdDateTime": format_datetime(obj.created_at),
        "modificationDateTime": format_datetime(obj.modified_at),
        "objectType": object_type,
    }


def _targets(targets, version: str):
    return targets if version == V301 else targets_as_strings(targets)


def _descriptors(body: dict, version: str) -> dict:
    """An event's body with its report descriptors' targets in the version's form."""
    if version == V301 or not body.get("reportDescriptors"):
        return body
    return {
        **body,
        "reportDescriptors": [
            {**d, "targets": _targets(d.get("targets"), version)} if isinstance(d, dict) else d
            for d in body["reportDescriptors"]
        ],
    }


def program(p: Program, *, version: str = V301) -> dict:
    return without_nulls(
        {**_stamp(p, "PROGRAM"), **p.body, "programName": p.program_name, "targets": _targets(p.targets, version)}
    )


def event(e: Event, *, version: str = V301) -> dict:
    return without_nulls(
        {
            **_stamp(e, "EVENT"),
            "programID": str(e.program_id),
            "eventName": e.event_name,
            "priority": e.priority,
            **_descriptors(e.body, version),
            "targets": _targets(e.targets, version),
        }
    )


def report(r: Report, *, version: str = V301) -> dict:
    ids = {"programID": str(r.program_id)} if version == V301 else {"clientID": r.client.client_id}
    return without_nulls(
        {
            **_stamp(r, "REPORT"),
            **ids,
            "eventID": str(r.event_id),
            "clientName": r.client_name,
            "reportName": r.report_name,
            **r.body,
        }
    )


def subscription(s: Subscription, *, version: str = V301, reader_client_id: int | None = None) -> dict:
    operations = s.object_operations
    if reader_client_id is not None and reader_client_id != s.client_id:  # a callback's token is its owner's secret
        operations = [{k: v for k, v in op.items() if k != "bearerToken"} for op in operations]
    return without_nulls(
        {
            **_stamp(s, "SUBSCRIPTION"),
            "clientName": s.client_name,
            "clientID": s.client.client_id if version != V301 else None,
            "programID": str(s.program_id) if s.program_id is not None else None,
            "objectOperations": operations,
            "targets": _targets(s.targets, version),
        }
    )


def _client_id(v: Ven) -> str | None:
    """3.1's clientID of a VEN: the client that acts as it (a VEN business logic made unbound has none)."""
    return v.client.client_id if v.client_id is not None else None


def resource(r: Resource, *, version: str = V301) -> dict:
    return without_nulls(
        {
            **_stamp(r, "RESOURCE"),
            "resourceName": r.resource_name,
            "venID": str(r.ven_id),
            "clientID": _client_id(r.ven) if version != V301 else None,
            "attributes": r.attributes,
            "targets": _targets(r.targets, version),
        }
    )


def ven(v: Ven, *, version: str = V301) -> dict:
    return without_nulls(
        {
            **_stamp(v, "VEN"),
            "venName": v.ven_name,
            "clientID": _client_id(v) if version != V301 else None,
            "attributes": v.attributes,
            "targets": _targets(v.targets, version),
            # 3.0.1 embeds a VEN's resources; 3.1 has them at /resources only.
            "resources": [resource(r) for r in v.resources.all()] if version == V301 else None,
        }
    )


def in_each_version(describe, obj) -> dict[str, dict]:
    """The object's JSON in each version (for a notification of an object about to be deleted)."""
    return {version: describe(obj, version=version) for version in VERSIONS}


def notifiers() -> dict:
    """3.1's notifier bindings: webhooks only (MQTT is not offered)."""
    return {"WEBHOOK": True}


def problem_handler(exc, context):
    """The platform's error handling, answered as the specification's problem object.

    `type` names the kind of problem (a URN), `title` is the HTTP status phrase, `detail`
    the first message, `instance` the request's absolute URI (the definitions ask for a URI);
    `errors` lists every problem by field.
    """
    response = platform_handler(exc, context)
    if response is None:
        return None
    if response.status_code == 415:  # undocumented by the definitions: the body is what is wrong, a 400
        response.status_code = 400
    data = response.data
    errors = data.get("errors") or []
    detail = errors[0]["message"] if errors else data.get("title", "")
    if errors and errors[0].get("field"):
        detail = f"{errors[0]['field']}: {detail}"
    request = context.get("request")
    response.data = {
        "type": f"urn:vpp:problem:{data.get('type', 'error')}",
        "title": HTTPStatus(response.status_code).phrase,
        "status": response.status_code,
        "detail": detail,
        "instance": request.build_absolute_uri(request.path) if request else "about:blank",
        "errors": errors,
    }
    return response


def problem(status: int, code: str, detail: str, *, field: str | None = None, request=None) -> JsonResponse:
    """A problem object answered outside DRF (a path that names no operation)."""
    return JsonResponse(
        {
            "type": f"urn:vpp:problem:{code}",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
            "instance": request.build_absolute_uri(request.path) if request else "about:blank",
            "errors": [{"field": field, "code": code, "message": detail}],
        },
        status=status,
    )
