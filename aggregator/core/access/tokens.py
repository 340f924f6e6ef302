"""Bearer tokens that are shown once and stored only as a hash.

A token reads `<kind>_<key id>_<secret>`. The key id is stored in clear to find the
row; the whole token is stored as a SHA-256 digest. A fast hash is right here
because the secret is 256 random bits, not a password a person chose: there is
nothing to brute-force, and devices authenticate on every request.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import models
from django.utils import timezone

KINDS = {
    "op": "operator",
    "dev": "device",
    "gw": "gateway",
    "mkt": "market",
    "utl": "distribution utility",
    "oac": "OpenADR client secret",
    "oat": "OpenADR access token",
}
# Touching last_used_at on every request would make every device call a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedToken:
    plaintext: str
    key_id: str
    digest: str


def digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue(kind: str) -> IssuedToken:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    key_id = secrets.token_hex(8)
    plaintext = f"{kind}_{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedToken(plaintext=plaintext, key_id=key_id, digest=digest(plaintext))


def parse(plaintext: str) -> tuple[str, str] | None:
    """(kind, key id) of a well-formed token, else None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] not in KINDS or len(parts[1]) != 16:
        return None
    return parts[0], parts[1]


class HashedToken(models.Model):
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def matches(self, plaintext: str) -> bool:
        return hmac.compare_digest(self.digest, digest(plaintext))

    def is_usable(self, at=None) -> bool:
        at = at or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > at)

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > LAST_USED_RESOLUTION:
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
