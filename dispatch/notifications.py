"""Telling customers about events: pluggable channels, and a record of every message.

A channel is a class with a `channel` name and `send(*, customer, subject, message)`
that raises when the message could not go (the record then says failed, and why).
`settings.DISPATCH_NOTIFIERS` lists the classes by dotted path; the in-app channel
only records the message (the customer app reads it). Each customer hears of each
kind of news about an event once per channel, whatever retries happen.
"""

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection
from django.utils.module_loading import import_string

from dispatch import jobs
from dispatch.models import CustomerNotification, DispatchEvent
from enrollment.models import Customer


class InAppNotifier:
    channel = "in_app"

    def send(self, *, customer, subject: str, message: str) -> None:
        """Nothing to send: the record is the message."""


class EmailNotifier:
    channel = "email"

    def send(self, *, customer, subject: str, message: str) -> None:
        if not customer.email:
            raise ValueError("The customer has no email address.")
        send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, [customer.email])


def notifiers() -> list:
    return [import_string(path)() for path in settings.DISPATCH_NOTIFIERS]


def notify_customers(*, event_id: int, kind: str) -> None:
    """Queue the messages (they go from a worker, after the event's change committed)."""
    jobs.notify_customers(event_id, kind)


_AFFECTED = """
SELECT DISTINCT a.customer_id FROM dispatch_allocation a
WHERE a.event_id = %s AND (a.reason = 'allocated'
      OR EXISTS (SELECT 1 FROM dispatch_devicecommand c WHERE c.event_id = a.event_id AND c.device_id = a.device_id))
"""


def message_for(event: DispatchEvent, kind: str) -> tuple[str, str]:
    local = event.resource.market.time_zone
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(local)
    window = f"{event.start.astimezone(zone):%a %d %b %H:%M} to {event.end.astimezone(zone):%H:%M %Z}"
    if kind == "cancelled":
        return (
            "Grid event cancelled",
            f"The grid event planned for {window} is cancelled: your equipment runs as usual.",
        )
    if kind.startswith("updated"):
        return "Grid event changed", f"The grid event now runs {window}. Your equipment will follow the new times."
    return "Grid event", (
        f"Your equipment will help the grid {window}. You can opt out at any time from your device "
        "or app; your backup reserve is kept."
    )


def send(*, event_id: int, kind: str) -> dict[str, int]:
    """Record and send one message per affected customer and channel; returns counts by status."""
    event = DispatchEvent.objects.select_related("resource__market").get(pk=event_id)
    subject, message = message_for(event, kind)
    with connection.cursor() as cursor:
        cursor.execute(_AFFECTED, [event_id])
        customers = [row[0] for row in cursor.fetchall()]
    counts = {"sent": 0, "failed": 0}

    for notifier in notifiers():
        done = set(
            CustomerNotification.objects.filter(event_id=event_id, kind=kind, channel=notifier.channel).values_list(
                "customer_id", flat=True
            )
        )
        todo = [c for c in customers if c not in done]
        if notifier.channel == InAppNotifier.channel:
            CustomerNotification.objects.bulk_create(
                [
                    CustomerNotification(
                        event_id=event_id,
                        customer_id=c,
                        kind=kind,
                        channel=notifier.channel,
                        message=message,
                        status=CustomerNotification.Status.SENT,
                    )
                    for c in todo
                ],
                batch_size=5000,
                ignore_conflicts=True,
            )
            counts["sent"] += len(todo)
            continue
        for customer in Customer.objects.filter(pk__in=todo).iterator(chunk_size=2000):
            try:
                notifier.send(customer=customer, subject=subject, message=message)
                status, error = CustomerNotification.Status.SENT, ""
            except Exception as exc:
                status, error = CustomerNotification.Status.FAILED, str(exc)[:500]
            CustomerNotification.objects.get_or_create(
                event_id=event_id,
                customer=customer,
                kind=kind,
                channel=notifier.channel,
                defaults={"message": message, "status": status, "error": error},
            )
            counts[status] += 1
    return counts
