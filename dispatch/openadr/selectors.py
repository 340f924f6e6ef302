"""Reads for the VTN: which events a client may see, and which VEN clients may read an event."""

from django.db.models import Q, QuerySet

from aggregator.core import queries
from dispatch.openadr import schema
from dispatch.openadr.models import Client, Event, Resource, Ven


def ven_keys(ven: Ven) -> list[str]:
    """The "TYPE:value" targets that reach this VEN: its name, its resources' names, its and their own targets."""
    keys = [f"VEN_NAME:{ven.ven_name}", *schema.target_keys(ven.targets)]
    for resource in ven.resources.all():
        keys += [f"RESOURCE_NAME:{resource.resource_name}", *schema.target_keys(resource.targets)]
    return keys


def visible_events(client: Client, queryset: QuerySet[Event], ven: Ven | None = None) -> QuerySet[Event]:
    """All events for business logic; for a VEN client, the untargeted ones and those targeted at its VEN."""
    if client.role != Client.Role.VEN:
        return queryset
    ven = ven or Ven.objects.filter(client=client).first()
    if ven is None:
        return queryset.none()
    return queryset.filter(Q(target_keys=[]) | Q(target_keys__overlap=ven_keys(ven)))


def event_readers(event: Event) -> set[int] | None:
    """The VEN clients that may read an event (None: every client, the event being untargeted)."""
    if event.resource_id is not None:
        return {event.resource.ven.client_id}
    if not event.target_keys:
        return None
    keys = set(event.target_keys)
    return {
        ven.client_id
        for ven in Ven.objects.filter(client__isnull=False).prefetch_related("resources")
        if keys & set(ven_keys(ven))
    }


def serves_devices(device_ids: list[int]) -> bool:
    """Whether any of these devices is a VEN's resource (the OpenADR delivery channel serves it)."""
    return queries.any_with(Resource, "device", device_ids)
