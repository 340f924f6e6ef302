"""The market side's Celery tasks: thin (load ids, call a service)."""

from celery import shared_task

from aggregator.market import awards, telemetry
from aggregator.market.offers import services as offer_services


@shared_task(acks_late=True)
def prune_telemetry() -> int:
    """Beat, hourly: samples older than MARKET_TELEMETRY_KEEP_DAYS go, in batches."""
    return telemetry.prune()


@shared_task(acks_late=True)
def poll_awards() -> dict[str, int]:
    """Beat: take in the awards every connected market's adapter has published since the last poll."""
    taken = {}
    for connection in awards.pollable_connections().select_related("market"):
        result = awards.poll_awards(connection=connection)
        taken[connection.market.code] = result.new
    return taken


@shared_task(name="aggregator.market.tasks.offer_cycle", ignore_result=True)
def offer_cycle() -> dict:
    """Beat, every minute: build, submit and expire energy offers before each market's deadlines."""
    return offer_services.run_offer_cycle()
