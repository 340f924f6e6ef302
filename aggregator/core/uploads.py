"""An operator's uploaded file that a Celery task imports: its state, its figures and where its progress is kept.

Abstract: an app's import (the fleet file, utility meter data) subclasses it with its own `file` field (where the
uploads go) and `progress_prefix` (the cache key its task writes `{"done", "total", ...}` under).
"""

from typing import ClassVar

from django.conf import settings
from django.db import models


class UploadJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        REJECTED = "rejected", "Rejected (nothing written)"
        FAILED = "failed", "Failed"

    progress_prefix: ClassVar[str] = "upload"

    file = models.FileField(upload_to="uploads/%Y/%m/")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    rows = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def progress_key(self) -> str:
        return f"{self.progress_prefix}:{self.pk}:progress"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.REJECTED, self.State.FAILED)
