"""What enrollment runs later, by task: sent when the surrounding transaction commits, so that the worker finds
the row it is given."""

from celery import current_app
from django.db import transaction


def import_fleet(import_id: int) -> None:
    """Run an uploaded fleet file (enrollment.tasks.import_fleet) once its row is committed."""
    transaction.on_commit(
        lambda: current_app.send_task("enrollment.tasks.import_fleet", args=(import_id,), ignore_result=True)
    )
