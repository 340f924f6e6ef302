"""The Celery broker: on Redis, kombu's transport with a channel that survives Redis going away; on RabbitMQ,
the delay queues that tasks with an ETA are sent through, declared by whoever sends first.

Redis:
when the broker connection drops, the worker closes it twice: `collect()` first, then `close()`
(celery 5.7's `Consumer.on_connection_error_after_connected`). kombu's Redis channel begins its
close by reading the reply of the BRPOP it has in flight; with Redis gone that read raises, the
close stops there and the channel stays open. `collect()` then detaches the transport from the
connection, and the second close, now reaching the step that puts the worker's unacknowledged
messages back (every task held for its ETA: each scheduled event's next step), finds no
connection settings: `AttributeError: 'NoneType' object has no attribute 'hostname'`. That is
no connection error, so the consumer does not reconnect; the worker exits.

Here a BRPOP whose reply died with the connection ends the read and the close goes on, and a
channel whose close failed counts as closed, so closing it again does nothing. Messages the close
could not put back stay in Redis's unacked set if Redis kept its data, to be delivered again after
the visibility timeout; an event whose step was lost meanwhile is started by dispatch's sweep.

RabbitMQ:
a connection's unacknowledged messages are put back by the broker itself when the connection goes, so no
client-side step can fail on the way and py-amqp's transport needs no such repair; the worker reconnects (tested
in tests/dispatch/test_dispatch_worker.py, with the broker closing every connection as it does when it stops).
What RabbitMQ needs instead: a task with an ETA (each event's notify, start and end) is published into Celery's
native delayed delivery, 28 delay queues that pass a message on after its countdown. A worker declares them when
it starts; a web process that queues an ETA task on a broker no worker has started on yet would find no such
exchange (404, the request fails), so the first ETA send of each process declares them and binds the app's queues.
"""

import threading
from queue import Empty

from celery.signals import before_task_publish
from kombu.exceptions import OperationalError
from kombu.transport import redis
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)


class Channel(redis.Channel):
    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors:
                pass  # the reply went with the connection; nothing is left to read
        try:
            super().close()
        finally:
            self.closed = True


class Transport(redis.Transport):
    Channel = Channel


_delay_declared: set[str] = set()  # the brokers this process declared them on
_declaring = threading.Lock()


def declare_delayed_delivery(app) -> None:
    """Declare the delay queues and exchanges and bind the app's queues to them (idempotent, as a worker does)."""
    with app.connection_for_write() as conn:
        try:
            conn.ensure_connection(max_retries=1)
            declare_native_delayed_delivery_exchanges_and_queues(
                conn, app.conf.broker_native_delayed_delivery_queue_type
            )
            for queue in app.amqp.queues.values():
                queue.bind(conn.default_channel).declare()  # the queue's own exchange is what the binding binds
                bind_queue_to_native_delayed_delivery_exchange(conn, queue)
        except conn.connection_errors as exc:
            # What dispatch.jobs treats as the broker being away.
            raise OperationalError(str(exc)) from exc


@before_task_publish.connect
def _delay_queues_before_the_first_delayed_send(sender=None, exchange=None, **kwargs) -> None:
    if not str(getattr(exchange, "name", exchange) or "").startswith("celery_delayed_"):
        return
    from celery import current_app

    broker = current_app.conf.broker_url
    if broker in _delay_declared:
        return
    with _declaring:
        if broker not in _delay_declared:
            declare_delayed_delivery(current_app)
            _delay_declared.add(broker)
