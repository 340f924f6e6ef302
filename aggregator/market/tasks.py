"""The market side's Celery tasks: thin (load ids, call a service)."""

from celery import shared_task

from aggregator.market import telemetry


@shared_task(acks_late=True)
def prune_telemetry() -> int:
    """Beat, hourly: samples older than MARKET_TELEMETRY_KEEP_DAYS go, in batches."""
    return telemetry.prune()
