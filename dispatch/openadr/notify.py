"""Subscription webhooks: a notification to each callbackUrl whose subscription asked for the operation.

After the write commits, the notification `{"objectType", "operation", "object", "targets"}`
is queued once per matching subscription, in the words of the version the subscription was
written through (3.0.1 names the operation by its HTTP verb, POST, PUT, DELETE, where its
subscriptions and 3.1 say CREATE, UPDATE, DELETE); optional members with no value are left out;
it is and posted by a worker with the subscription's
bearerToken (if it gave one); a failed post is retried three times with growing delays.
A subscription only hears of what its client may read: a VEN's subscription gets the
events targeted at its VEN, its own reports, VEN and resources, never another client's.
Callback URLs are checked like device push endpoints (https, public addresses).
"""

import json

from django.db import transaction
from django.db.models import Q

from aggregator.core.errors import Problem
from dispatch import push
from dispatch.openadr import jobs, schema
from dispatch.openadr import representation as rep
from dispatch.openadr.models import V301, Client, Event, Program, Report, Resource, Subscription, Ven
from dispatch.openadr.selectors import visible_events

RETRY_DELAYS = push.RETRY_DELAYS


def check_callback(url: str, field: str) -> None:
    try:
        push.check_url(url, field)
    except push.PushRefused as refused:
        raise schema.Invalid(
            [Problem(p.code, p.message.replace("Push endpoints", "Callback URLs"), field) for p in refused.problems]
        ) from None


def _describe(object_type: str, obj) -> tuple[dict[str, dict], int | None, list | None]:
    """(the object's JSON in each version, its program, its targets) for the object types that notify."""
    if isinstance(obj, Program):
        return rep.in_each_version(rep.program, obj), obj.pk, obj.targets
    if isinstance(obj, Event):
        return rep.in_each_version(rep.event, obj), obj.program_id, obj.targets
    if isinstance(obj, Report):
        return rep.in_each_version(rep.report, obj), obj.program_id, None
    if isinstance(obj, Subscription):
        return rep.in_each_version(rep.subscription, obj), obj.program_id, obj.targets
    if isinstance(obj, Ven):
        return rep.in_each_version(rep.ven, obj), None, obj.targets
    if isinstance(obj, Resource):
        return rep.in_each_version(rep.resource, obj), None, obj.targets
    raise TypeError(object_type)


def _readable_by(client: Client, object_type: str, obj) -> bool:
    if client.role == Client.Role.BUSINESS_LOGIC or object_type == "PROGRAM":
        return True
    if object_type == "EVENT":
        return visible_events(client, Event.live.filter(pk=obj.pk)).exists()
    if object_type in ("REPORT", "SUBSCRIPTION"):
        return obj.client_id == client.pk
    ven = obj if object_type == "VEN" else obj.ven
    return ven.client_id == client.pk


def _owner(object_type: str, obj) -> int | None:
    """The one VEN client that may read the object besides business logic, where there is exactly one."""
    if obj is None:
        return None
    if object_type == "EVENT" and obj.resource_id is not None:
        return obj.resource.ven.client_id or 0
    if object_type in ("REPORT", "SUBSCRIPTION"):
        return obj.client_id
    if object_type == "VEN":
        return obj.client_id or 0
    if object_type == "RESOURCE":
        return obj.ven.client_id or 0
    return None


# How 3.0.1's notifications name an operation (its definition's notification schema).
NOTIFICATION_VERBS_301 = {"READ": "GET", "CREATE": "POST", "UPDATE": "PUT", "DELETE": "DELETE"}


def _recipients(
    object_type: str, operation: str, obj, program_id: int | None, targets, readers: set[int] | None = None
) -> list[tuple[str, str | None, str]]:
    """(callback URL, bearer token, version) of each subscription to hear of the operation. `readers` (VEN client ids)
    narrows them when the object is gone; otherwise they are narrowed by who may read the object."""
    subscriptions = Subscription.objects.select_related("client").filter(
        object_operations__contains=[{"objects": [object_type], "operations": [operation]}]
    )
    if program_id is not None:  # a subscription to no program in particular hears of every program's objects
        subscriptions = subscriptions.filter(Q(program_id=program_id) | Q(program__isnull=True))
    # Narrow to the clients that can read the object where that is known without asking each one.
    owner = _owner(object_type, obj)
    if owner is not None:
        readers = {owner}
    if readers is not None:
        subscriptions = subscriptions.filter(Q(client__role=Client.Role.BUSINESS_LOGIC) | Q(client_id__in=readers))
    keys = set(schema.target_keys(targets))
    out = []
    for subscription in subscriptions:
        if subscription.targets and not keys & set(schema.target_keys(subscription.targets)):
            continue
        if obj is not None and not _readable_by(subscription.client, object_type, obj):
            continue
        out += [
            (op["callbackUrl"], op.get("bearerToken"), subscription.version)
            for op in subscription.object_operations
            if object_type in op["objects"] and operation in op["operations"]
        ]
    return out


def notification(object_type: str, operation: str, body: dict, targets, *, version: str) -> dict:
    """The version's notification of an operation (CREATE, UPDATE, DELETE) on an object (its JSON in that version)."""
    return rep.without_nulls(
        {
            "objectType": object_type,
            "operation": NOTIFICATION_VERBS_301[operation] if version == V301 else operation,
            "object": body,
            "targets": targets if version == V301 else schema.targets_as_strings(targets),
        }
    )


def _queue(object_type: str, operation: str, bodies: dict[str, dict], recipients, targets) -> None:
    texts = {
        version: json.dumps(notification(object_type, operation, body, targets, version=version))
        for version, body in bodies.items()
    }
    for url, token, version in dict.fromkeys(recipients):
        jobs.deliver_notification(url, token, texts[version])


def changed(object_type: str, operation: str, obj) -> None:
    """Notify the subscribers of a CREATE or an UPDATE, once the write commits."""

    def send():
        bodies, program_id, targets = _describe(object_type, obj)
        _queue(object_type, operation, bodies, _recipients(object_type, operation, obj, program_id, targets), targets)

    transaction.on_commit(send)


def deleted(
    object_type: str, bodies: dict[str, dict], *, program_id: int | None, targets, readers: set[int] | None = None
) -> None:
    """Notify the subscribers of a DELETE (`bodies`: the object's JSON in each version, rep.in_each_version);
    the object is gone, so `readers` (client ids) says who may hear of it, None meaning every subscriber."""

    def send():
        recipients = _recipients(object_type, "DELETE", None, program_id, targets, readers=readers)
        _queue(object_type, "DELETE", bodies, recipients, targets)

    transaction.on_commit(send)


def deliver(url: str, token: str | None, text: str) -> str | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return push.send(url, text.encode(), headers)
