"""A backing service that is away (PostgreSQL restarting, Redis down, the broker unreachable) is a 503 with
Retry-After, not a 500: the API's exception handler (aggregator.core.api.errors) answers every failure listed
here with the one error body (`service_unavailable`). The request's transaction has rolled back, so nothing of
it was written and the client may send it again.
"""

import redis
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

# The failures of a service that is away: PostgreSQL's connection lost or refused (psycopg raises
# OperationalError, then InterfaceError on the closed connection), Redis refusing or timing out
# (as the cache and the rate limits see it, and as the broker does).
OUTAGES: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    BrokerError,
)
RETRY_AFTER_SECONDS = 10  # about what a PostgreSQL or Redis restart takes
