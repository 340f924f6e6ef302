import logging

from celery import shared_task

from dispatch.openadr import mapping, notify

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def deliver_notification(url: str, token: str | None, text: str, attempt: int) -> bool:
    """Post one notification; on failure, try again later (three more times)."""
    error = notify.deliver(url, token, text)
    if error is None:
        return True
    log.warning("OpenADR notification to %s failed (attempt %d): %s", url, attempt + 1, error)
    if attempt < len(notify.RETRY_DELAYS):
        deliver_notification.apply_async((url, token, text, attempt + 1), countdown=notify.RETRY_DELAYS[attempt])
    return False


@shared_task(acks_late=True)
def sync_commands(event_id: int, first_device: int, last_device: int) -> int:
    """The OpenADR events of one fan-out chunk's VEN resources (idempotent: it makes them match the commands)."""
    return mapping.sync_commands(event_id=event_id, first_device=first_device, last_device=last_device)
