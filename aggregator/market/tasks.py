"""The market side's Celery tasks: thin (load ids, call a service)."""

from celery import shared_task
from django.utils import timezone

from aggregator.market.forecasting import rollup
from aggregator.market.forecasting import services as forecasting


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
