"""Placement runs asked for by a person ("Place now" on the page, ``POST /api/v1/jobs/place/``), for polling."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.choices import RunStatus


class PlaceRun(models.Model):
    """One placement run asked for through the page or the API: queued for a worker, then its report.

    The page polls it through HTMX and the API client through ``GET /api/v1/place-runs/{id}/``; a reader limited
    to some teams is told only about their jobs (``scheduler.selectors.place_run_report``).
    """

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(null=True, blank=True, help_text="What the run placed and why the rest was not.")
    error = models.TextField(blank=True, help_text="Why the run could not run or finish, once failed.")

    class Meta:
        ordering = ("-requested_at", "-pk")

    def __str__(self) -> str:
        return f"placement run #{self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.FAILED)
