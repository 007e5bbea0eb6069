"""Datasets (where data lives), jobs (what needs GPUs) and placements (where a job goes, and why)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from core.validators import validate_one_line
from fleet.choices import ProviderKind
from fleet.scoping import TeamScopedQuerySet
from scheduler.choices import JobState, LaunchStatus, TargetKind

money = {"max_digits": 16, "decimal_places": 6}


class Dataset(models.Model):
    """Input data with a location: a cloud bucket (its region) or an on-prem site, and a size."""

    name = models.CharField(max_length=200, unique=True, validators=[validate_one_line])
    uri = models.CharField(max_length=500, blank=True, help_text="s3://bucket/prefix or gs://bucket/prefix.")
    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    region = models.CharField(max_length=64, blank=True, help_text="The bucket's region (cloud datasets).")
    site = models.ForeignKey(
        "fleet.Site",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="datasets",
        help_text="The on-prem site holding the data.",
    )
    size_bytes = models.PositiveBigIntegerField(validators=[MinValueValidator(1)])
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Job(models.Model):
    """Work that needs GPUs for a while, with its data and its constraints."""

    name = models.CharField(max_length=200, validators=[validate_one_line])
    team = models.ForeignKey("fleet.Team", on_delete=models.PROTECT, related_name="jobs")
    project = models.ForeignKey("fleet.Project", on_delete=models.PROTECT, null=True, blank=True, related_name="jobs")
    gpu_count = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    gpu_model = models.CharField(max_length=32, blank=True, help_text="Catalogue key (H100, A100-80GB…); empty: any.")
    min_gpu_memory_mib = models.PositiveIntegerField(null=True, blank=True)
    expected_hours = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0.01)])
    datasets = models.ManyToManyField(Dataset, blank=True, related_name="jobs")
    priority = models.IntegerField(default=0, help_text="Higher goes first when jobs compete for GPUs.")
    max_usd_per_h = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    spot_allowed = models.BooleanField(default=False)
    allowed_providers = ArrayField(
        models.CharField(max_length=16, choices=ProviderKind.choices),
        default=list,
        blank=True,
        help_text="Empty: any provider.",
    )
    allowed_regions = ArrayField(
        models.CharField(max_length=64),
        default=list,
        blank=True,
        help_text="Data residency: cloud regions or on-prem site names; empty: anywhere.",
    )
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.PENDING)
    pending_reason = models.CharField(max_length=500, blank=True, help_text="Why a pending job is not placed.")
    submitted_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-priority", "created", "pk")
        indexes = [models.Index(fields=("state", "-priority", "created"))]

    def __str__(self) -> str:
        return self.name


class Placement(models.Model):
    """Where a job was put, what it costs there, and the alternatives that lost."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="placements")
    active = models.BooleanField(default=True, help_text="False once the job is re-queued or re-placed.")
    target_kind = models.CharField(max_length=8, choices=TargetKind.choices)
    node = models.ForeignKey("fleet.Node", on_delete=models.SET_NULL, null=True, blank=True, related_name="placements")
    gpu_count = models.PositiveSmallIntegerField()
    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    region = models.CharField(max_length=64, blank=True)
    site = models.ForeignKey("fleet.Site", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    instance_type = models.CharField(max_length=64, blank=True)
    instance_count = models.PositiveSmallIntegerField(default=1)
    spot = models.BooleanField(default=False)
    preemptible = models.BooleanField(
        default=False, help_text="On GPUs borrowed beyond the team's guarantee: reclaimed first when others wait."
    )
    usd_per_h = models.DecimalField(**money)
    compute_usd = models.DecimalField(**money)
    egress_usd = models.DecimalField(**money)
    total_usd = models.DecimalField(**money)
    transfer_s = models.PositiveIntegerField(default=0, help_text="Time to move the input data there.")
    breakdown = models.JSONField(default=list, blank=True, help_text="Per dataset: from, to, bytes, $, seconds.")
    alternatives = models.JSONField(default=list, blank=True, help_text="The ranked candidates considered.")
    policy_version = models.CharField(max_length=32)
    launch_status = models.CharField(max_length=16, choices=LaunchStatus.choices, blank=True, default="")
    launch_request = models.JSONField(default=dict, blank=True, help_text="The cloud API call made or recorded.")
    launch_error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    team_scope_fields = ("job__team",)  # fleet.scoping: the team of a row
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-created", "-pk")
        constraints = [
            models.UniqueConstraint(
                fields=("job",), condition=Q(active=True), name="%(app_label)s_%(class)s_one_active_per_job"
            ),
        ]
        indexes = [models.Index(fields=("node",), condition=Q(active=True), name="scheduler_placement_node_act")]

    def __str__(self) -> str:
        return f"{self.job} → {self.node or f'{self.provider_kind}:{self.region}:{self.instance_type}'}"
