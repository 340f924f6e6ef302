"""The market side's Celery tasks: thin (load ids, call a service)."""

from celery import shared_task

from aggregator.market.offers import services as offer_services


@shared_task(name="aggregator.market.tasks.offer_cycle", ignore_result=True)
def offer_cycle() -> dict:
    """Beat, every minute: build, submit and expire energy offers before each market's deadlines."""
    return offer_services.run_offer_cycle()
