"""What the VTN runs later, by task: notifications to subscribers, and a fan-out chunk's OpenADR events."""

from dispatch.jobs import Job, after_commit, send


def deliver_notification(url: str, token: str | None, text: str) -> None:
    """Post a notification to a subscriber's callback (retried by the task itself)."""
    send(Job("dispatch.openadr.tasks.deliver_notification", (url, token, text, 0)))


def sync_commands(event_id: int, round_number: int, first_device: int, last_device: int) -> None:
    """A committed fan-out chunk's commands become (or update) its VEN resources' events."""
    after_commit(Job("dispatch.openadr.tasks.sync_commands", (event_id, first_device, last_device)))
