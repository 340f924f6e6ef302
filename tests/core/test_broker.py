"""The broker as CELERY_BROKER_URL chooses it: what a process that is no worker needs from it (see aggregator.core.broker)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from aggregator.web.tasks import ping
from tests import rabbitmq
from tests.redis_server import tasks_sent_to

pytestmark = pytest.mark.worker  # run on each broker with the worker tests


def test_the_broker_is_redis_unless_celery_broker_url_names_another():
    if rabbitmq.on_rabbitmq():
        assert settings.CELERY_TASK_DEFAULT_QUEUE_TYPE == "quorum"
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS == {"confirm_publish": True}
    else:
        assert settings.CELERY_BROKER_URL == settings.REDIS_URL
        assert settings.CELERY_BROKER_TRANSPORT == "aggregator.core.broker:Transport"


@pytest.mark.skipif(not rabbitmq.on_rabbitmq(), reason="RabbitMQ's delay queues")
@pytest.mark.skipif(rabbitmq.on_rabbitmq() and not rabbitmq.can_manage_vhosts(), reason="needs rabbitmqctl")
def test_a_task_with_an_eta_sent_before_any_worker_ran_waits_in_the_delay_queues():
    """A web process may queue an event's start on a broker no worker has declared anything on yet."""
    vhost = rabbitmq.PrivateVhost()
    try:
        with tasks_sent_to(vhost.url, result_backend=settings.CELERY_RESULT_BACKEND):
            at = datetime.now(UTC) + timedelta(hours=2)
            sent = ping.apply_async(eta=at, ignore_result=True)
            held = rabbitmq.peek("celery")
        assert [m["headers"]["id"] for m in held] == [sent.id]
        eta = datetime.fromisoformat(held[0]["headers"]["eta"])
        assert at <= eta < at + timedelta(seconds=1)
    finally:
        vhost.delete()
