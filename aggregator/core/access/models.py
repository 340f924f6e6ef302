from django.conf import settings
from django.db import models

from aggregator.core.access.tokens import HashedToken


class OperatorToken(HashedToken):
    """An API token for an operator's scripts; it carries its user's roles."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")

    def __str__(self) -> str:
        return f"{self.user} {self.key_id}"
