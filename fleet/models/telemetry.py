"""Telemetry records kept by the ORM: GPU health events. (Samples and roll-ups live in tables created by SQL
migrations and written with COPY; see fleet/telemetry/storage.py.)"""

from django.db import models

from fleet.choices import HealthEventKind


class HealthEvent(models.Model):
    """Something a GPU reported that needs a person: an XID error, new ECC errors, a lost GPU."""

    gpu = models.ForeignKey("fleet.GPU", on_delete=models.CASCADE, related_name="health_events")
    node = models.ForeignKey("fleet.Node", on_delete=models.CASCADE, related_name="health_events")
    occurred_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=HealthEventKind.choices)
    code = models.BigIntegerField(default=0, help_text="XID code, or the new error count for ECC.")
    message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("-occurred_at", "-pk")
        constraints = [
            # A retried poll must not record the same event twice.
            models.UniqueConstraint(
                fields=("gpu", "kind", "occurred_at", "code"), name="%(app_label)s_%(class)s_unique_event"
            ),
        ]
        indexes = [models.Index(fields=("node", "-occurred_at"))]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.code} on {self.gpu_id} at {self.occurred_at:%Y-%m-%d %H:%M}"
