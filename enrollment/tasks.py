from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from enrollment import fleet_import, services
from enrollment.models import FleetImport


@shared_task(acks_late=True)
def lapse_overdue_utility_reviews() -> dict[str, int]:
    return services.lapse_overdue_reviews()


@shared_task(acks_late=True)
def mark_silent_devices_offline() -> int:
    return services.mark_silent_devices_offline()


@shared_task(acks_late=True)
def count_fleet() -> float:
    """The fleet page's figures counted again, and the map's site states with them; returns the count's seconds."""
    return services.recount_fleet().seconds


@shared_task(acks_late=True)
def import_fleet(import_id: int) -> str:
    """Run an uploaded fleet import; progress goes to the cache, the report to the row."""
    job = FleetImport.objects.get(pk=import_id)
    if job.state not in (FleetImport.State.QUEUED, FleetImport.State.RUNNING):
        return job.state  # a redelivered task after it finished
    FleetImport.objects.filter(pk=job.pk).update(state=FleetImport.State.RUNNING)

    def progress(done: int, total: int, stage: str) -> None:
        cache.set(job.progress_key, {"done": done, "total": total, "stage": stage}, 86400)

    try:
        with job.file.open("rb") as handle:
            report = fleet_import.import_fleet(source=handle.read(), progress=progress)
    except Exception as exc:
        FleetImport.objects.filter(pk=job.pk).update(
            state=FleetImport.State.FAILED, finished_at=timezone.now(), report={"error": f"{type(exc).__name__}: {exc}"}
        )
        raise
    FleetImport.objects.filter(pk=job.pk).update(
        state=FleetImport.State.DONE if report.ok else FleetImport.State.REJECTED,
        rows=report.rows,
        report=report.as_dict(),
        finished_at=timezone.now(),
    )
    if report.ok:  # the new sites on the map and the fleet page now, not at beat's next count
        services.recount_fleet()
    return report.summary()
