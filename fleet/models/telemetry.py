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


class GpuSample(models.Model):
    """A raw sample row (read-only view of the partitioned table; written by COPY, see telemetry/storage.py)."""

    pk = models.CompositePrimaryKey("gpu_id", "ts")
    gpu = models.ForeignKey("fleet.GPU", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    ts = models.DateTimeField()
    power_w = models.FloatField(null=True)
    mem_used_mib = models.FloatField(null=True)
    util_pct = models.SmallIntegerField(null=True)
    temp_c = models.SmallIntegerField(null=True)
    sm_clock_mhz = models.SmallIntegerField(null=True)

    class Meta:
        managed = False  # created by migration 0004's SQL: partitioned by day, which the ORM cannot express
        db_table = "fleet_gpu_sample"
        ordering = ("gpu_id", "ts")

    def __str__(self) -> str:
        return f"{self.gpu_id}@{self.ts:%Y-%m-%d %H:%M:%S}"
