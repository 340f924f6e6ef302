from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: its fleet and story, the seed command and the device simulator."""

    name = "aggregator.demo"
    label = "demo"
    verbose_name = "Demo fleet and simulator"
