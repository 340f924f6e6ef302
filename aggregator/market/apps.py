from django.apps import AppConfig


class MarketConfig(AppConfig):
    """The wholesale side: flexibility forecasts, offers, awards and telemetry to the market."""

    name = "aggregator.market"
    label = "market"
    verbose_name = "Wholesale market"
