"""The market side's Celery tasks: thin (load ids, call a service)."""

from celery import shared_task
from django.utils import timezone

from aggregator.market import awards, telemetry
from aggregator.market.forecasting import rollup
from aggregator.market.forecasting import services as forecasting
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


@shared_task(acks_late=True)
def roll_up_forecast_history() -> dict:
    """Readings received since the last run into the forecast's rollup; heartbeats' temperatures per zone."""
    now = timezone.now()
    result = rollup.roll_up_readings(now=now)
    result["zone_temperatures"] = rollup.record_zone_temperatures(now=now)
    return result


@shared_task(acks_late=True)
def forecast_hourly() -> int:
    return len(forecasting.forecast_resources(now=timezone.now(), kinds=("hourly",)))


@shared_task(acks_late=True)
def forecast_real_time() -> int:
    return len(forecasting.forecast_resources(now=timezone.now(), kinds=("real_time",)))
