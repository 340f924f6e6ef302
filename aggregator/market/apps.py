from django.apps import AppConfig


class MarketConfig(AppConfig):
    """The wholesale side: flexibility forecasts, offers, awards and telemetry to the market."""

    name = "aggregator.market"
    label = "market"
    verbose_name = "Wholesale market"

    def ready(self):
        # Local import: an adapter module registers its kind with the adapter registry when imported, and must be
        # imported once the app registry is ready (the registry's type hints name MarketConnection).
        from aggregator.market.adapters import file  # noqa: F401
