from django.apps import AppConfig


class AggregatorConfig(AppConfig):
    name = "aggregator"
    verbose_name = "Markets and aggregation"

    def ready(self):
        from aggregator.core.api import schema  # noqa: F401  registers the OpenAPI auth schemes
