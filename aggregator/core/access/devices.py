"""Device-API access: a device or gateway token, the caller it stands for, and its request budget.

The credential model belongs to enrollment, above this package: like Django's AUTH_USER_MODEL it is named
in settings (DEVICE_CREDENTIAL_MODEL) and looked up in the app registry, so every app's device views share
one authentication without the base layer importing a domain app. The model provides `devices()`, the
queryset of devices its holder may see.
"""

import logging

import redis
from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from rest_framework import authentication, exceptions, permissions
from rest_framework.throttling import SimpleRateThrottle

from aggregator.core import redis_client
from aggregator.core.access import tokens
from aggregator.core.access.authentication import bearer_token, resolve

log = logging.getLogger(__name__)


def credential_model():
    """The device credential model (settings.DEVICE_CREDENTIAL_MODEL)."""
    return apps.get_model(settings.DEVICE_CREDENTIAL_MODEL, require_ready=True)


class DevicePrincipal:
    """The caller on the device API: one device, or a gateway acting for its devices."""

    is_authenticated = True
    is_active = True
    is_superuser = False

    def __init__(self, credential):
        self.credential = credential
        self.device_id = credential.device_id
        self.gateway_id = credential.gateway_id

    def devices(self):
        """The devices this caller may see and act for (a queryset)."""
        return self.credential.devices()


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        plaintext = bearer_token(request)
        if plaintext is None:
            return None
        parsed = tokens.parse(plaintext)
        if parsed is None:
            raise exceptions.AuthenticationFailed("Malformed token.", code="invalid_token")
        kind, key_id = parsed
        if kind not in ("dev", "gw"):
            raise exceptions.AuthenticationFailed(
                "The device API takes device or gateway tokens.", code="wrong_token_kind"
            )
        credential = resolve(credential_model().objects.all(), plaintext, key_id)
        return DevicePrincipal(credential), credential

    def authenticate_header(self, request):
        return "Bearer"


class IsDevice(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, DevicePrincipal)


class DeviceTokenRateThrottle(SimpleRateThrottle):
    """Requests per token: a device reports every few minutes; a gateway speaks for many devices.

    A fixed-window counter in Redis, one round trip per request (SET NX EX + INCR in a
    pipeline): the device API's hottest endpoints cannot afford DRF's history list
    (a read, a pickle and a write of up to thousands of timestamps per request).
    """

    def allow_request(self, request, view):
        principal = request.user
        if not isinstance(principal, DevicePrincipal):
            return True
        kind = "device" if principal.device_id is not None else "gateway"
        allowed, self.retry_after = count_request(kind=kind, key_id=principal.credential.key_id)
        return allowed

    def wait(self):
        return self.retry_after

    def get_rate(self):
        return None  # per token kind, from settings.DEVICE_API_RATES


def rate_limit(*, kind: str, key_id: str) -> tuple[str, int, int]:
    """(counter key, requests allowed, window seconds) of a token's fixed window."""
    limit, window = SimpleRateThrottle.parse_rate(None, settings.DEVICE_API_RATES[kind])
    return cache.make_and_validate_key(f"throttle:{kind}:{key_id}"), limit, window


def count_request(*, kind: str, key_id: str) -> tuple[bool, int | None]:
    """(allowed, seconds to wait) for one more request by this token.

    With Redis unreachable the request is allowed: the budget protects the platform from a
    misbehaving device, and refusing every device while Redis is down would be the larger harm.
    """
    key, limit, window = rate_limit(kind=kind, key_id=key_id)
    client = redis_client.client()
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        count = pipe.execute()[1]
        if count <= limit:
            return True, None
        return False, max(client.ttl(key), 1)
    except redis.RedisError as exc:
        log.warning("Redis unavailable (%s): rate limit not applied to %s token %s", exc, kind, key_id)
        return True, None


class DeviceAPIMixin:
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    throttle_classes = [DeviceTokenRateThrottle]
    filter_backends = []
