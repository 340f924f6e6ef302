from celery import shared_task
from django.utils import timezone

from aggregator.reference import partitions
from dispatch.models import DispatchEvent
from settlement import services
from settlement.meter_import import import_meter_data as run
from settlement.models import MeterDataImport


@shared_task(acks_late=True)
def create_reading_partitions_ahead() -> list[str]:
    return partitions.ensure_ahead(now=timezone.now(), months=3)


@shared_task(acks_late=True)
def import_meter_data(import_id: int) -> str:
    """Run an uploaded meter-data import; progress goes to the cache, the report to the row."""
    from django.core.cache import cache

    job = MeterDataImport.objects.get(pk=import_id)
    if job.state not in (MeterDataImport.State.QUEUED, MeterDataImport.State.RUNNING):
        return job.state  # a redelivered task after it finished
    MeterDataImport.objects.filter(pk=job.pk).update(state=MeterDataImport.State.RUNNING)
    try:
        with job.file.open("rb") as handle:
            report = run(
                source=handle.read(),
                progress=lambda done, total: cache.set(job.progress_key, {"done": done, "total": total}, 86400),
            )
    except Exception as exc:
        MeterDataImport.objects.filter(pk=job.pk).update(
            state=MeterDataImport.State.FAILED,
            finished_at=timezone.now(),
            report={"error": f"{type(exc).__name__}: {exc}"},
        )
        raise
    MeterDataImport.objects.filter(pk=job.pk).update(
        state=MeterDataImport.State.DONE if report.ok else MeterDataImport.State.REJECTED,
        rows=report.rows,
        report=report.as_dict(),
        finished_at=timezone.now(),
    )
    return report.summary()


@shared_task
def settle_due() -> dict:
    """Initial runs after the meter-data deadline; resettlements when late or corrected data changed the inputs."""

    initial, changed = services.due(now=timezone.now())
    for event_id in initial + changed:
        settle_event.delay(event_id)
    return {"initial": len(initial), "resettle": len(changed)}


@shared_task(acks_late=True)
def settle_event(event_id: int) -> int:

    return services.settle_event(event=DispatchEvent.objects.get(pk=event_id), by="settlement job").version
