import os

from celery import Celery
from celery.signals import heartbeat_sent

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")

app = Celery("aggregator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# On RabbitMQ, the first task sent with an ETA declares the delay queues (see aggregator.core.broker).
import aggregator.core.broker  # noqa: E402, F401


@heartbeat_sent.connect
def record_heartbeat(sender, **kwargs):
    # Imported here, not at the top: this module loads with the aggregator package itself, before Django is set up.
    from aggregator.core.workers import record_heartbeat as record

    record(sender, **kwargs)
