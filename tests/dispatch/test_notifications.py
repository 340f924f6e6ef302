"""Customers hear of an event once their devices have their commands: one message per channel, failures recorded."""

from datetime import UTC, datetime, timedelta

from django.core import mail

from dispatch import notifications, services
from dispatch.models import Allocation, CustomerNotification
from tests.dispatch.conftest import queued


def _issued_event(make_resource, capture, *, target_kw=60):
    resource = make_resource(generators=3)
    now = datetime.now(UTC)
    with capture(execute=False):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=now,
            end=now + timedelta(hours=1),
            target_kw=target_kw,
            over_commit_pct=0,
            by="tester",
        )
    with capture(execute=False):
        chunks = services.advance(event_id=event.pk)
    with capture(execute=False) as callbacks:
        for chunk in chunks:
            services.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
            )
    return event, callbacks


def test_customers_are_told_only_once_their_devices_have_commands_and_only_those_asked(
    make_resource, django_capture_on_commit_callbacks
):
    event, callbacks = _issued_event(make_resource, django_capture_on_commit_callbacks)
    assert len(queued(callbacks)) == 1  # the last chunk queued the messages
    counts = notifications.send(event_id=event.pk, kind="notified")
    asked = set(Allocation.objects.filter(event=event, reason="allocated").values_list("customer_id", flat=True))
    told = set(
        CustomerNotification.objects.filter(event=event, kind="notified", channel="in_app").values_list(
            "customer_id", flat=True
        )
    )
    assert told == asked and len(asked) == 2 and counts == {"sent": 2, "failed": 0}
    notifications.send(event_id=event.pk, kind="notified")  # a retried task
    assert CustomerNotification.objects.filter(event=event).count() == 2


def test_email_goes_where_configured_and_a_customer_without_an_address_is_recorded_as_failed(
    make_resource, django_capture_on_commit_callbacks, settings
):
    settings.DISPATCH_NOTIFIERS = ["dispatch.notifications.InAppNotifier", "dispatch.notifications.EmailNotifier"]
    event, _ = _issued_event(make_resource, django_capture_on_commit_callbacks)
    first, second = Allocation.objects.filter(event=event, reason="allocated").select_related("device__site__customer")[
        :2
    ]
    second.device.site.customer.email = ""
    second.device.site.customer.save()
    notifications.send(event_id=event.pk, kind="notified")
    assert [m.to for m in mail.outbox] == [[first.device.site.customer.email]]
    assert "grid" in mail.outbox[0].body.lower()
    failed = CustomerNotification.objects.get(event=event, channel="email", status="failed")
    assert failed.customer_id == second.customer_id and "no email" in failed.error


def test_a_cancelled_event_tells_the_customers_whose_devices_had_commands(
    make_resource, django_capture_on_commit_callbacks
):
    event, _ = _issued_event(make_resource, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        services.cancel(event=event, by="operator", reason="grid recovered")
    event.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for chunk in services.pending_chunks(event=event):
            services.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
            )
    assert len(queued(callbacks)) == 1
    notifications.send(event_id=event.pk, kind="cancelled")
    message = CustomerNotification.objects.filter(event=event, kind="cancelled").first().message
    assert CustomerNotification.objects.filter(event=event, kind="cancelled").count() == 2 and "cancelled" in message
