from django.apps import AppConfig


class WebConfig(AppConfig):
    """The fronts: the operator console and the customer portal (their pages, templates and static files)."""

    name = "aggregator.web"
    label = "web"
    verbose_name = "Console and portal"
