"""Fleet inventory: where GPUs are (provider, site), what they are (node, GPU) and who uses them (team)."""

from __future__ import annotations

from types import SimpleNamespace

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.db.models import Q

from core.choices import RunStatus
from core.validators import validate_one_line
from fleet.choices import (
    CLOUD_LIFECYCLES,
    Continent,
    GpuSliceKind,
    NodeLifecycle,
    NodeSource,
    NodeState,
    ProviderKind,
)
from fleet.validators import (
    AWS_ACCOUNT_RE,
    GCP_PROJECT_RE,
    SLUG_NAME_RE,
    validate_credential_ref,
    validate_gpu_uuid,
    validate_labels,
    validate_telemetry_url,
    validate_token_ref,
)

# A stand-in discovered node for checking a provider's agent URL template.
AGENT_URL_EXAMPLE = SimpleNamespace(private_ip="10.0.0.1", external_id="i-0123456789abcdef0", zone="z", region="r")
# The dirtiest grids on record (coal-only, e.g. ~1,100 gCO2e/kWh) stay well under this: above it is a typo.
CARBON_G_PER_KWH_MAX = 2000
slug_name = RegexValidator(
    SLUG_NAME_RE, "Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit."
)


class Provider(models.Model):
    """A cloud account (AWS account, GCP project) or an on-prem organisation that owns sites."""

    name = models.CharField(max_length=64, unique=True, validators=[slug_name])
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    account_id = models.CharField(
        max_length=64, blank=True, help_text="AWS account id (12 digits) or GCP project id; empty for on-prem."
    )
    credential_ref = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_credential_ref],
        help_text="Where credentials come from: empty (default chain), 'adc', 'profile:NAME' or 'env:VAR'.",
    )
    regions = ArrayField(
        models.CharField(max_length=32),
        default=list,
        blank=True,
        help_text="Cloud regions to inventory, e.g. us-east-1 (AWS needs them; for GCP empty means all zones).",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled providers are skipped by inventory sync.")
    agent_url_template = models.CharField(
        max_length=300,
        blank=True,
        help_text="Where the agents of nodes found by inventory sync listen, e.g. "
        "'http://{private_ip}:9400/metrics'. Placeholders: private_ip, name, external_id, zone, region.",
    )
    agent_token_ref = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_token_ref],
        help_text="The bearer token of those agents: 'env:FLEETDECK_VAR' or 'file:/path' inside FLEETDECK_SECRETS_DIR.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)
        constraints = [
            models.UniqueConstraint(
                fields=("kind", "account_id"),
                condition=~Q(account_id=""),
                name="%(app_label)s_%(class)s_unique_account",
                violation_error_message="A provider for this account already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def agent_url(self, *, node, name: str) -> str:
        """The agent URL of a discovered node (anything with private_ip, external_id, zone, region)."""
        return self.agent_url_template.format(
            private_ip=node.private_ip, name=name, external_id=node.external_id, zone=node.zone, region=node.region
        )

    def clean(self) -> None:
        errors = {}
        if self.kind == ProviderKind.AWS and self.account_id and not AWS_ACCOUNT_RE.match(self.account_id):
            errors["account_id"] = "An AWS account id is 12 digits."
        if self.kind == ProviderKind.GCP and self.account_id and not GCP_PROJECT_RE.match(self.account_id):
            errors["account_id"] = "A GCP project id is 6-30 lower-case letters, digits or hyphens."
        if self.kind == ProviderKind.ONPREM and self.credential_ref:
            errors["credential_ref"] = "On-prem providers have no cloud credentials."
        if self.agent_url_template:
            try:
                URLValidator(schemes=["http", "https"])(self.agent_url(node=AGENT_URL_EXAMPLE, name="node-1"))
            except (KeyError, IndexError, ValueError, ValidationError):
                errors["agent_url_template"] = (
                    "Use an http(s) URL with placeholders among {private_ip}, {name}, {external_id}, {zone}, {region}."
                )
        if errors:
            raise ValidationError(errors)


class Site(models.Model):
    """A location GPUs live in: a cloud region (and zone) or an on-prem data centre with its energy price."""

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="sites")
    name = models.CharField(max_length=64, unique=True, validators=[slug_name])
    region = models.CharField(max_length=64, blank=True, help_text="Cloud region, or the data centre's metro.")
    zone = models.CharField(max_length=64, blank=True)
    continent = models.CharField(max_length=16, choices=Continent.choices)
    electricity_usd_per_kwh = models.DecimalField(
        max_digits=8, decimal_places=5, null=True, blank=True, help_text="On-prem only: $ per kWh."
    )
    pue = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="On-prem only: power usage effectiveness (facility power / IT power), at least 1.0.",
    )
    carbon_g_per_kwh = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(CARBON_G_PER_KWH_MAX)],
        help_text="Grid carbon intensity (gCO2e/kWh) set by the operator. On-prem: required for carbon figures; "
        "cloud: overrides the shipped per-region value. Hourly values imported for the site beat both.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(
                condition=Q(pue__isnull=True) | Q(pue__gte=1), name="%(app_label)s_%(class)s_pue_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(electricity_usd_per_kwh__isnull=True) | Q(electricity_usd_per_kwh__gte=0),
                name="%(app_label)s_%(class)s_electricity_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(carbon_g_per_kwh__isnull=True)
                | Q(carbon_g_per_kwh__gte=0, carbon_g_per_kwh__lte=CARBON_G_PER_KWH_MAX),
                name="%(app_label)s_%(class)s_carbon_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_onprem(self) -> bool:
        return self.provider.kind == ProviderKind.ONPREM

    def clean(self) -> None:
        if self.provider_id is None:
            return  # the field error says so
        errors = {}
        if self.is_onprem:
            if self.electricity_usd_per_kwh is None:
                errors["electricity_usd_per_kwh"] = "An on-prem site needs its electricity price ($/kWh)."
            if self.pue is None:
                errors["pue"] = "An on-prem site needs its PUE (1.0 or more)."
        else:
            if not self.region:
                errors["region"] = "A cloud site needs its region."
            if self.electricity_usd_per_kwh is not None or self.pue is not None:
                errors["pue"] = "Electricity price and PUE apply to on-prem sites only; cloud prices include them."
        if self.pue is not None and self.pue < 1:
            errors["pue"] = "PUE is at least 1.0."
        if self.electricity_usd_per_kwh is not None and self.electricity_usd_per_kwh < 0:
            errors["electricity_usd_per_kwh"] = "The electricity price cannot be negative."
        if errors:
            raise ValidationError(errors)


class Team(models.Model):
    """A group of people that owns nodes and pays for them."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_one_line])
    slug = models.SlugField(max_length=64, unique=True)
    members = models.ManyToManyField(
        "auth.User",
        blank=True,
        related_name="teams",
        help_text="A viewer who is a member of teams sees only their spend (operators and admins see all).",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Project(models.Model):
    """A team's piece of work that spend is attributed to."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=100, validators=[validate_one_line])
    slug = models.SlugField(max_length=64)

    class Meta:
        ordering = ("team__name", "name")
        constraints = [
            models.UniqueConstraint(fields=("team", "slug"), name="%(app_label)s_%(class)s_unique_team_slug"),
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.slug}"


class Node(models.Model):
    """A machine with GPUs: a cloud instance or an on-prem server, in exactly one site."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="nodes")
    name = models.CharField(max_length=128, validators=[validate_one_line])
    external_id = models.CharField(max_length=128, blank=True, help_text="Cloud instance id; empty on-prem.")
    instance_type = models.CharField(max_length=64, blank=True, help_text="e.g. p5.48xlarge, a2-highgpu-1g.")
    lifecycle = models.CharField(max_length=16, choices=NodeLifecycle.choices)
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.RUNNING)
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="nodes")
    project = models.ForeignKey(Project, on_delete=models.SET_NULL, null=True, blank=True, related_name="nodes")
    labels = models.JSONField(default=dict, blank=True, validators=[validate_labels])
    telemetry_url = models.URLField(
        max_length=500,
        blank=True,
        validators=[validate_telemetry_url],
        help_text="The node's http(s) /metrics endpoint (fleet agent or dcgm-exporter).",
    )
    token_ref = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_token_ref],
        help_text="Where the endpoint's bearer token is kept: 'env:FLEETDECK_VAR' or 'file:/path' inside "
        "FLEETDECK_SECRETS_DIR. Never the token.",
    )
    source = models.CharField(
        max_length=16,
        choices=NodeSource.choices,
        default=NodeSource.MANUAL,
        help_text="Who manages this row: cloud sync owns aws/gcp rows; manual and import rows are left to people.",
    )
    launched_at = models.DateTimeField(null=True, blank=True, help_text="When billing starts; empty: when created.")
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When the node stopped or was terminated (billing ends); empty while it runs."
    )
    last_seen = models.DateTimeField(null=True, blank=True, help_text="Last successful telemetry poll.")
    consecutive_poll_failures = models.PositiveIntegerField(default=0)
    last_poll_error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "pk")
        constraints = [
            models.UniqueConstraint(fields=("site", "name"), name="%(app_label)s_%(class)s_unique_site_name"),
            models.UniqueConstraint(
                fields=("site", "external_id"),
                condition=~Q(external_id=""),
                name="%(app_label)s_%(class)s_unique_site_external_id",
                violation_error_message="A node with this external id already exists in this site.",
            ),
        ]
        indexes = [models.Index(fields=("state",)), models.Index(fields=("team", "state"))]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.project_id and self.team_id and self.project.team_id != self.team_id:
            errors["project"] = f"Project {self.project} belongs to another team than {self.team}."
        if self.project_id and not self.team_id:
            errors["team"] = "A node with a project needs that project's team."
        if self.site_id is not None and self.lifecycle:
            onprem = self.site.is_onprem
            if onprem and self.lifecycle != NodeLifecycle.OWNED:
                errors["lifecycle"] = "On-prem nodes are owned."
            elif not onprem and self.lifecycle not in CLOUD_LIFECYCLES:
                errors["lifecycle"] = "Cloud nodes are on-demand, spot or reserved."
        if errors:
            raise ValidationError(errors)


class GPU(models.Model):
    """One GPU of a node, identified fleet-wide by its NVML UUID."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="gpus")
    index = models.PositiveSmallIntegerField(help_text="NVML device index on the node.")
    uuid = models.CharField(
        max_length=80,
        unique=True,
        null=True,
        blank=True,
        validators=[validate_gpu_uuid],
        help_text="NVML UUID. Empty for a GPU found by cloud inventory until the node's telemetry reports it.",
    )
    model = models.CharField(max_length=100, help_text="As NVML names it, e.g. 'NVIDIA H100 80GB HBM3'.")
    memory_mib = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    power_limit_w = models.PositiveIntegerField(null=True, blank=True)
    # The latest reading, kept on the row so lists and the overview need no scan of the sample table.
    sampled_at = models.DateTimeField(null=True, blank=True, editable=False)
    util_pct = models.FloatField(null=True, blank=True, editable=False)
    mem_used_mib = models.FloatField(null=True, blank=True, editable=False)
    power_w = models.FloatField(null=True, blank=True, editable=False)
    temp_c = models.FloatField(null=True, blank=True, editable=False)
    sm_clock_mhz = models.FloatField(null=True, blank=True, editable=False)
    idle_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Since when utilisation has stayed under the idle threshold."
    )
    # Counters as last reported, to turn the exporter's cumulative values into health events.
    xid_last = models.BigIntegerField(default=0, editable=False)
    ecc_sbe_total = models.FloatField(null=True, blank=True, editable=False)
    ecc_dbe_total = models.FloatField(null=True, blank=True, editable=False)
    lost = models.BooleanField(default=False, editable=False, help_text="NVML reports the GPU as lost.")

    class Meta:
        ordering = ("node_id", "index")
        verbose_name = "GPU"
        constraints = [
            models.UniqueConstraint(fields=("node", "index"), name="%(app_label)s_%(class)s_unique_node_index"),
            models.CheckConstraint(condition=Q(memory_mib__gt=0), name="%(app_label)s_%(class)s_memory_positive"),
        ]
        indexes = [
            models.Index(fields=("model",)),
            # The idle GPUs are a small part of the fleet: the overview finds them through this.
            models.Index(fields=("idle_since",), condition=Q(idle_since__isnull=False), name="fleet_gpu_idle_since"),
        ]

    def __str__(self) -> str:
        return f"{self.node.name}/gpu{self.index}"

    def clean(self) -> None:
        # "" would collide with the next unknown UUID under the unique constraint; unknown is NULL.
        if not self.uuid:
            self.uuid = None


class GpuSlice(models.Model):
    """A share of one GPU that a team (and project) uses: a MIG instance or a time-sliced replica.

    A GPU's hour is split across its slices by size: ``units`` of ``of_units`` (a MIG instance of profile
    ``3g.40gb`` is 3 of the GPU's 7 compute slices; one of 4 time-sliced replicas is 1 of 4). Units no slice
    holds are idle capacity: their share of the GPU's cost is idle $ of the node's team (billing.ledger).
    """

    gpu = models.ForeignKey(GPU, on_delete=models.CASCADE, related_name="slices")
    kind = models.CharField(max_length=16, choices=GpuSliceKind.choices)
    name = models.CharField(
        max_length=64,
        validators=[validate_one_line],
        help_text="MIG: the GPU instance id (dcgm's GPU_I_ID) or profile, e.g. '3g.40gb'; time-slice: the replica.",
    )
    units = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)], help_text="The slice's size.")
    of_units = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="The GPU's size in the same units: 7 for MIG on A100/H100, the replica count for time-slicing.",
    )
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="gpu_slices")
    project = models.ForeignKey(Project, on_delete=models.SET_NULL, null=True, blank=True, related_name="gpu_slices")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("gpu_id", "name")
        verbose_name = "GPU slice"
        constraints = [
            models.UniqueConstraint(fields=("gpu", "name"), name="%(app_label)s_%(class)s_unique_gpu_name"),
            models.CheckConstraint(condition=Q(units__lte=models.F("of_units")), name="%(app_label)s_%(class)s_fits"),
        ]

    def __str__(self) -> str:
        return f"{self.gpu_id}/{self.name} ({self.units}/{self.of_units})"

    def clean(self) -> None:
        errors = {}
        if self.units and self.of_units and self.units > self.of_units:
            errors["units"] = f"A slice of {self.units} units does not fit a GPU of {self.of_units}."
        if self.project_id and self.team_id and self.project.team_id != self.team_id:
            errors["project"] = f"Project {self.project} belongs to another team than {self.team}."
        if self.gpu_id and self.units and self.of_units and not errors:
            others = GpuSlice.objects.filter(gpu_id=self.gpu_id).exclude(pk=self.pk)
            if others.exclude(kind=self.kind).exists():
                errors["kind"] = "A GPU is either MIG-partitioned or time-sliced, not both."
            elif others.exclude(of_units=self.of_units).exists():
                errors["of_units"] = "Every slice of a GPU counts in the same units (the same 'of units')."
            else:
                held = sum(others.values_list("units", flat=True))
                if held + self.units > self.of_units:
                    errors["units"] = f"The GPU's slices would hold {held + self.units} of its {self.of_units} units."
        if errors:
            raise ValidationError(errors)


class InventoryScope(models.Model):
    """One unit of cloud inventory sync (an AWS region, a GCP project): its last outcome and backoff state."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="inventory_scopes")
    scope = models.CharField(max_length=64, help_text="AWS region, or GCP project id.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Backoff: skipped until then.")
    last_error = models.TextField(blank=True)
    nodes_seen = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("provider__name", "scope")
        constraints = [
            models.UniqueConstraint(fields=("provider", "scope"), name="%(app_label)s_%(class)s_unique_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.provider.name}:{self.scope}"

    @property
    def ok(self) -> bool:
        return self.consecutive_failures == 0 and self.last_success_at is not None


class SyncRun(models.Model):
    """One sync of a provider's cloud inventory asked for through the API: queued for a worker, then its report.

    ``POST /api/v1/providers/{id}/sync/`` creates it and answers 202; the client polls
    ``GET /api/v1/sync-runs/{id}/`` until ``status`` is done (``report`` per scope) or failed (``error``).
    """

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="sync_runs")
    force = models.BooleanField(default=True, help_text="Scopes backing off after failures are synced too.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(null=True, blank=True, help_text="What each scope did, once done.")
    error = models.TextField(blank=True, help_text="Why the sync could not run or finish, once failed.")

    class Meta:
        ordering = ("-requested_at", "-pk")
        indexes = [models.Index(fields=("provider", "-requested_at"))]

    def __str__(self) -> str:
        return f"{self.provider.name} sync #{self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.FAILED)
