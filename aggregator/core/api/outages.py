"""A backing service that is away (PostgreSQL restarting, Redis down) is a 503 with Retry-After, not a 500.

A view that lists `AnswersOutages` first among its bases answers such a failure with the one error body
(`service_unavailable`) and a Retry-After header. Its transaction has rolled back, so nothing of the
request was written and the client may send it again.
"""

import logging

import redis
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError
from rest_framework import exceptions, status

log = logging.getLogger(__name__)

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


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"
    default_detail = "A service the platform needs is unavailable; nothing was changed. Try again shortly."

    def __init__(self, wait: int = RETRY_AFTER_SECONDS):
        super().__init__()
        self.wait = wait  # the error handler's Retry-After


class AnswersOutages:
    """APIView mixin: the failures in OUTAGES are answered 503 with Retry-After (and logged), not 500."""

    def handle_exception(self, exc):
        if isinstance(exc, OUTAGES):
            log.warning("%s %s: a backing service is unavailable (%r)", self.request.method, self.request.path, exc)
            exc = ServiceUnavailable()
        return super().handle_exception(exc)
