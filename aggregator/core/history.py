"""The shape every lifecycle's history shares: who took which action from which state to which, when and why."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from aggregator.core import state_machine


class TransitionRecord(models.Model):
    """Abstract: a subclass adds the object it records and `from_state` / `to_state` with its own choices."""

    action = models.CharField(max_length=30)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    reason = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["at", "id"]

    @classmethod
    def entry(cls, *, by, **fields):
        """An unsaved record; `by` is a user or a job's name (see state_machine.actor)."""
        actor, label = state_machine.actor(by)
        return cls(actor=actor, actor_label=label, **fields)
