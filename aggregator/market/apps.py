from django.apps import AppConfig


class MarketConfig(AppConfig):
    """The wholesale side: flexibility forecasts, offers, awards and telemetry to the market."""

    name = "aggregator.market"
    label = "market"
    verbose_name = "Wholesale market"

    def ready(self):
        # Imported here, once the app registry is ready: an adapter module registers its kind with
        # aggregator.market.adapters when it loads, and it imports the market's models.
        from aggregator.market.adapters import file, http  # noqa: F401
