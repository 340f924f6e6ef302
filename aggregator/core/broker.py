"""The Celery broker's transport: kombu's Redis transport, with a channel that survives Redis going away.

When the broker connection drops, the worker closes it twice: `collect()` first, then `close()`
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
"""

from queue import Empty

from kombu.transport import redis


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
