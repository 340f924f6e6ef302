from django.utils import timezone
from rest_framework import authentication, exceptions

from aggregator.core.access import tokens
from aggregator.core.access.models import OperatorToken


def bearer_token(request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def resolve(queryset, plaintext: str, key_id: str):
    """The usable stored token for a plaintext token, or AuthenticationFailed."""
    # No ORDER BY (first() would add one): the unique key id finds the row by its own index.
    row = next(iter(queryset.filter(key_id=key_id).order_by()[:1]), None)
    if row is None or not row.matches(plaintext):
        raise exceptions.AuthenticationFailed("Invalid token.", code="invalid_token")
    if not row.is_usable(timezone.now()):
        raise exceptions.AuthenticationFailed("Token revoked or expired.", code="token_revoked")
    row.touch()
    return row


class OperatorTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer op_...` for the operator API."""

    keyword = "Bearer"

    def authenticate(self, request):
        plaintext = bearer_token(request)
        if plaintext is None:
            return None
        parsed = tokens.parse(plaintext)
        if parsed is None:
            raise exceptions.AuthenticationFailed("Malformed token.", code="invalid_token")
        kind, key_id = parsed
        if kind != "op":
            raise exceptions.AuthenticationFailed(
                "Device and gateway tokens are accepted on /api/device/v1/ only.", code="wrong_token_kind"
            )

        row = resolve(OperatorToken.objects.select_related("user"), plaintext, key_id)
        if not row.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.", code="user_inactive")
        return row.user, row

    def authenticate_header(self, request):
        return self.keyword
