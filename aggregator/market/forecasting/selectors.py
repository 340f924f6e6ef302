"""Reads of stored forecasts."""

from datetime import timedelta

from aggregator.aggregation.models import VirtualResource
from aggregator.market.models import Forecast


def latest_forecast(
    resource: VirtualResource | int, kind: str, *, model: str = Forecast.Model.LEARNED
) -> Forecast | None:
    """The resource's most recently issued forecast of `kind` (hourly or real_time) by `model`, or None."""
    resource_id = resource if isinstance(resource, int) else resource.pk
    return (
        Forecast.objects.filter(resource_id=resource_id, kind=kind, model=model).order_by("-issued_at", "-pk").first()
    )


def intervals(forecast: Forecast) -> list[dict]:
    """A forecast's intervals: [{start, expected_kw, p10_kw, p50_kw, p90_kw}]."""
    step = timedelta(minutes=forecast.interval_minutes)
    return [
        {"start": forecast.start + step * i, "expected_kw": e, "p10_kw": a, "p50_kw": b, "p90_kw": c}
        for i, (e, a, b, c) in enumerate(
            zip(forecast.expected_kw, forecast.p10_kw, forecast.p50_kw, forecast.p90_kw, strict=True)
        )
    ]
