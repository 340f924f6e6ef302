from celery import shared_task
from django.utils import timezone

from settlement import partitions


@shared_task(acks_late=True)
def create_reading_partitions_ahead() -> list[str]:
    return partitions.ensure_ahead(now=timezone.now(), months=3)
