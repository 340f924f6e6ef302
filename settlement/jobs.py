"""What settlement runs later, by task: sent when the surrounding transaction commits."""

from celery import current_app
from django.db import transaction


def settle_event_tracked(event_id: int, progress_key: str, by: str) -> None:
    """Settle the event in a worker, its progress and outcome under `progress_key` in the cache."""
    transaction.on_commit(
        lambda: current_app.send_task(
            "settlement.tasks.settle_event_tracked", args=(event_id, progress_key, by), ignore_result=True
        )
    )
