from celery import shared_task

from enrollment import services


@shared_task(acks_late=True)
def lapse_overdue_utility_reviews() -> dict[str, int]:
    return services.lapse_overdue_reviews()


@shared_task(acks_late=True)
def mark_silent_devices_offline() -> int:
    return services.mark_silent_devices_offline()
