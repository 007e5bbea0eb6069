"""Telemetry records kept by the ORM: GPU health events, PromQL sources and the health of every telemetry source.
(Samples and roll-ups live in tables created by SQL migrations and written with COPY; see
fleet/telemetry/storage.py.)"""

from django.db import models

from core.validators import validate_one_line
from fleet.choices import HealthEventKind, TelemetrySourceKind
from fleet.validators import validate_telemetry_url, validate_token_ref


class HealthEvent(models.Model):
    """Something a GPU reported that needs a person: an XID error, new ECC errors, a lost GPU."""

    gpu = models.ForeignKey("fleet.GPU", on_delete=models.CASCADE, related_name="health_events")
    node = models.ForeignKey("fleet.Node", on_delete=models.CASCADE, related_name="health_events")
    occurred_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=HealthEventKind.choices)
    code = models.BigIntegerField(default=0, help_text="XID code, or the new error count for ECC.")
    message = models.CharField(max_length=300, blank=True)
    resolved_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the GPU was fixed or replaced. Until then the event is open and the GPU's hours count as "
        "broken capacity $ (billing.ledger).",
    )

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


class PromQLSource(models.Model):
    """A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics) that already scrapes
    dcgm-exporter for a site's nodes: Fleetdeck reads the series from its ``/api/v1/query_range`` instead of
    scraping the nodes itself (fleet.telemetry.promql)."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_one_line])
    site = models.ForeignKey(
        "fleet.Site",
        on_delete=models.CASCADE,
        related_name="promql_sources",
        help_text="GPUs the source reports that Fleetdeck does not know are registered under this site's nodes.",
    )
    url = models.URLField(
        max_length=500,
        validators=[validate_telemetry_url],
        help_text="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090 (…/api/v1/query_range is added).",
    )
    token_ref = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_token_ref],
        help_text="Bearer token reference (env:FLEETDECK_… or file:<secrets folder>/…); empty: no token.",
    )
    selector = models.CharField(
        max_length=300,
        blank=True,
        validators=[validate_one_line],
        help_text='Extra PromQL label matchers for every series read, e.g. job="dcgm".',
    )
    enabled = models.BooleanField(default=True)
    read_until = models.DateTimeField(null=True, blank=True, help_text="Samples up to here have been read.")
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        verbose_name = "PromQL source"

    def __str__(self) -> str:
        return self.name


class TelemetrySourceHealth(models.Model):
    """How one source of telemetry is keeping up: a scrape shard, the remote-write receiver, a PromQL source.

    Written by the source as it runs; the overview shows it, so an operator sees when telemetry falls behind.
    """

    kind = models.CharField(max_length=16, choices=TelemetrySourceKind.choices)
    name = models.CharField(
        max_length=100,
        validators=[validate_one_line],
        help_text="The shard (3/8), the token's user, or the source's name.",
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    late_runs = models.PositiveBigIntegerField(default=0, help_text="Runs that started after their slot had passed.")
    failed_runs = models.PositiveBigIntegerField(default=0)
    samples_total = models.PositiveBigIntegerField(default=0)
    samples_last = models.PositiveIntegerField(default=0, help_text="Samples stored by the last run or request.")
    lag_s = models.FloatField(null=True, blank=True, help_text="How far behind now its newest stored sample is.")
    # Samples per second over the last whole rate window (at least RATE_WINDOW_S): the window being filled
    # starts at rate_window_start and holds rate_window_samples so far.
    rate_per_s = models.FloatField(null=True, blank=True, help_text="Samples stored per second, lately.")
    rate_window_start = models.DateTimeField(null=True, blank=True)
    rate_window_samples = models.PositiveBigIntegerField(default=0)
    # How long its runs took (scrape shards time theirs; the other kinds leave these at zero): the app's /metrics
    # exposes duration_total_s / duration_runs as a summary, so Prometheus can rate() the mean run time.
    duration_last_s = models.FloatField(null=True, blank=True, help_text="Seconds the last timed run took.")
    duration_total_s = models.FloatField(default=0.0, help_text="Seconds all timed runs took, added up.")
    duration_runs = models.PositiveBigIntegerField(default=0, help_text="Runs that were timed.")

    class Meta:
        ordering = ("kind", "name")
        constraints = [
            models.UniqueConstraint(fields=("kind", "name"), name="%(app_label)s_%(class)s_unique_source"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name}"
