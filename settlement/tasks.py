from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from aggregator.core.errors import DomainError
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


@shared_task(acks_late=True)
def settle_event_tracked(event_id: int, progress_key: str, by: str) -> int | None:
    """Settle an event for an operator who watches: its progress and then its outcome go to the cache under the key
    (the console's progress bar reads them)."""

    def progress(done: int, total: int, stage: str) -> None:
        cache.set(progress_key, {"state": "running", "done": done, "total": total, "stage": stage}, 86400)

    progress(0, 0, "reading meter data")
    try:
        run = services.settle_event(event=DispatchEvent.objects.get(pk=event_id), by=by, progress=progress)
    except DomainError as exc:
        cache.set(progress_key, {"state": "refused", "message": exc.problems[0].message}, 86400)
        return None
    except Exception as exc:
        cache.set(progress_key, {"state": "failed", "message": f"{type(exc).__name__}: {exc}"[:300]}, 86400)
        raise
    cache.set(
        progress_key,
        {"state": "done", "run": run.pk, "version": run.version, "sites": run.sites, "net": str(run.net)},
        86400,
    )
    return run.version
