"""Money that was spent: the hourly cost ledger, its daily roll-up, egress records and the cloud's own bill."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from billing.choices import BilledCostSource, EgressCause
from fleet.choices import NodeLifecycle, ProviderKind
from fleet.scoping import TeamScopedQuerySet

money = {"max_digits": 16, "decimal_places": 6}
zero = {"default": 0, "db_default": 0}


class LedgerEntry(models.Model):
    """What one node cost in one UTC hour, with the dimensions it is reported by copied onto the row.

    Rows are written by ``billing.ledger.ledger_compute`` only: recomputing an hour replaces its rows. Spend
    history protects its dimensions (node, team, project: PROTECT): a node with spend is retired (ended), not
    deleted, and a team or project with spend cannot be deleted, so totals never lose rows silently.
    """

    node = models.ForeignKey("fleet.Node", on_delete=models.PROTECT, related_name="ledger_entries")
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    provider = models.ForeignKey("fleet.Provider", on_delete=models.PROTECT, related_name="+")
    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    site = models.ForeignKey("fleet.Site", on_delete=models.PROTECT, related_name="+")
    team = models.ForeignKey("fleet.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    project = models.ForeignKey("fleet.Project", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    gpu_model = models.CharField(max_length=100, blank=True, help_text="NVML name of the node's GPUs.")
    lifecycle = models.CharField(max_length=16, choices=NodeLifecycle.choices)
    gpu_count = models.PositiveSmallIntegerField()
    active_s = models.PositiveIntegerField(help_text="Seconds of the hour the node existed and was billed.")
    rate_usd_per_h = models.DecimalField(**money, help_text="Whole-node $/h after discounts (energy excluded).")
    compute_usd = models.DecimalField(**money)
    energy_kwh = models.DecimalField(
        **money, help_text="Measured GPU energy × PUE (the site's on-prem, the provider's in the cloud)."
    )
    energy_usd = models.DecimalField(**money, help_text="On-prem only; cloud prices include energy.")
    gpu_hours = models.DecimalField(**money)
    idle_gpu_hours = models.DecimalField(**money)
    idle_usd = models.DecimalField(**money, help_text="The part of compute $ paid for idle GPUs.")
    priced = models.BooleanField(default=True, help_text="False when no price or cost model covered this hour.")
    co2e_kg = models.DecimalField(
        **money, null=True, blank=True, help_text="kgCO2e of the hour's energy; empty when the grid is unknown."
    )
    broken_gpu_hours = models.DecimalField(**money, **zero, help_text="GPU-hours on GPUs with an open health event.")
    broken_usd = models.DecimalField(**money, **zero, help_text="The part of compute $ paid for broken GPUs.")
    covered_usd = models.DecimalField(**money, **zero, help_text="The part of compute $ paid at a committed rate.")
    commitment = models.ForeignKey(
        "billing.Commitment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        help_text="The commitment that covered (part of) this hour.",
    )

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-hour", "node_id")
        verbose_name_plural = "ledger entries"
        # Operators and admins hold it (all billing permissions); a viewer who is a member of teams and lacks
        # it sees only those teams' spend (fleet.scoping).
        permissions = [("spend_all_teams", "Can see the spend of every team")]
        constraints = [
            models.UniqueConstraint(fields=("node", "hour"), name="%(app_label)s_%(class)s_unique_node_hour"),
        ]
        indexes = [models.Index(fields=("hour",)), models.Index(fields=("team", "hour"))]

    def __str__(self) -> str:
        return f"{self.node_id}@{self.hour:%Y-%m-%d %H:00}"

    @property
    def total_usd(self):
        return self.compute_usd + self.energy_usd


class LedgerShare(models.Model):
    """One team's (and project's) share of a node-hour whose GPUs are sliced (MIG or time-slicing).

    Written by ``billing.ledger.ledger_compute`` beside the node's ``LedgerEntry`` for nodes with ``GpuSlice``
    rows: each slice holder gets units / of_units of its GPU's share of the hour; the node's own team gets the
    rest (whole GPUs, and the slices nobody holds, which are idle $). The daily sums read these rows instead of
    the entry for such nodes, so a sliced node's cost is split across its teams everywhere.
    """

    entry = models.ForeignKey(LedgerEntry, on_delete=models.CASCADE, related_name="shares")
    team = models.ForeignKey("fleet.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    project = models.ForeignKey("fleet.Project", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    fraction = models.DecimalField(max_digits=12, decimal_places=10, help_text="Share of the node-hour.")
    gpu_hours = models.DecimalField(**money)
    compute_usd = models.DecimalField(**money)
    energy_kwh = models.DecimalField(**money)
    energy_usd = models.DecimalField(**money)
    idle_gpu_hours = models.DecimalField(**money)
    idle_usd = models.DecimalField(**money)
    co2e_kg = models.DecimalField(**money, null=True, blank=True)
    broken_gpu_hours = models.DecimalField(**money)
    broken_usd = models.DecimalField(**money)
    covered_usd = models.DecimalField(**money)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("entry_id", "team_id")
        constraints = [
            models.UniqueConstraint(
                fields=("entry", "team", "project"), name="%(app_label)s_%(class)s_unique_holder", nulls_distinct=False
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entry_id} {self.team_id}: {self.fraction}"


class LedgerDay(models.Model):
    """The ledger summed per UTC day and dimension set: what spend pages, budgets and reports read."""

    day = models.DateField()
    provider = models.ForeignKey("fleet.Provider", on_delete=models.CASCADE, related_name="+")
    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    site = models.ForeignKey(
        "fleet.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty on the rows of unused commitments (a commitment is bought for an account, not a site).",
    )
    team = models.ForeignKey("fleet.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    project = models.ForeignKey("fleet.Project", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    gpu_model = models.CharField(max_length=100, blank=True)
    lifecycle = models.CharField(max_length=16, choices=NodeLifecycle.choices)
    nodes = models.PositiveIntegerField()
    compute_usd = models.DecimalField(**money)
    energy_kwh = models.DecimalField(**money)
    energy_usd = models.DecimalField(**money)
    gpu_hours = models.DecimalField(**money)
    idle_gpu_hours = models.DecimalField(**money)
    idle_usd = models.DecimalField(**money)
    co2e_kg = models.DecimalField(**money, **zero)
    broken_gpu_hours = models.DecimalField(**money, **zero)
    broken_usd = models.DecimalField(**money, **zero)
    covered_usd = models.DecimalField(**money, **zero)
    unused_commitment_usd = models.DecimalField(**money, **zero, help_text="Commitments paid for and not used.")
    total_usd = models.DecimalField(**money, help_text="compute + energy + unused commitments.")

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-day", "provider_id", "site_id")
        constraints = [
            models.UniqueConstraint(
                fields=("day", "provider", "site", "team", "project", "gpu_model", "lifecycle"),
                name="%(app_label)s_%(class)s_unique_dims",
                nulls_distinct=False,
            ),
        ]
        indexes = [models.Index(fields=("day",)), models.Index(fields=("team", "day"))]

    def __str__(self) -> str:
        return f"{self.day} {self.site_id} {self.team_id}: ${self.total_usd}"


class LedgerNodeDay(models.Model):
    """The ledger summed per node, UTC day and team (a node moved to another team mid-day has two rows): what
    the top idle-cost nodes are ranked from (a month of the hourly ledger is millions of rows; this is ~30 per node).
    """

    day = models.DateField()
    node = models.ForeignKey("fleet.Node", on_delete=models.PROTECT, related_name="+", db_index=False)
    team = models.ForeignKey("fleet.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    idle_usd = models.DecimalField(**money)
    idle_gpu_hours = models.DecimalField(**money)
    total_usd = models.DecimalField(**money)
    co2e_kg = models.DecimalField(**money, **zero)
    broken_usd = models.DecimalField(**money, **zero)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-day", "node_id")
        constraints = [
            models.UniqueConstraint(
                fields=("node", "day", "team"), name="%(app_label)s_%(class)s_unique_node_day", nulls_distinct=False
            ),
        ]
        indexes = [models.Index(fields=("day",))]

    def __str__(self) -> str:
        return f"{self.node_id}@{self.day}: idle ${self.idle_usd}"


class EgressRecord(models.Model):
    """Data that moved between two locations, and what it cost."""

    occurred_at = models.DateTimeField()
    source = models.CharField(max_length=128, help_text="Location, e.g. 'aws:us-east-1' or 'onprem:dc-1'.")
    destination = models.CharField(max_length=128)
    source_provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    location_class = models.CharField(max_length=16, blank=True)
    bytes = models.PositiveBigIntegerField()
    usd = models.DecimalField(**money, validators=[MinValueValidator(0)])
    cause = models.CharField(max_length=16, choices=EgressCause.choices)
    planned = models.BooleanField(default=False, help_text="Written by a placement before the data has moved.")
    team = models.ForeignKey("fleet.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    project = models.ForeignKey("fleet.Project", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    placement = models.ForeignKey(
        "scheduler.Placement", on_delete=models.CASCADE, null=True, blank=True, related_name="egress_records"
    )
    dataset = models.ForeignKey(
        "scheduler.Dataset", on_delete=models.SET_NULL, null=True, blank=True, related_name="egress_records"
    )
    external_key = models.CharField(
        max_length=200, blank=True, help_text="Idempotency key of an imported record (e.g. day + usage type)."
    )

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-occurred_at", "-pk")
        constraints = [
            models.UniqueConstraint(
                fields=("cause", "external_key"),
                condition=~Q(external_key=""),
                name="%(app_label)s_%(class)s_unique_import",
            ),
        ]
        indexes = [models.Index(fields=("occurred_at",))]

    def __str__(self) -> str:
        return f"{self.source} → {self.destination}: {self.bytes} B"


class BilledCost(models.Model):
    """What the cloud itself billed for one day (AWS Cost Explorer or a FOCUS export), to reconcile against the
    ledger. The latest import of a day replaces it and says where it came from."""

    provider = models.ForeignKey("fleet.Provider", on_delete=models.CASCADE, related_name="billed_costs")
    day = models.DateField()
    usd = models.DecimalField(**money)
    source = models.CharField(
        max_length=16,
        choices=BilledCostSource.choices,
        default=BilledCostSource.COST_EXPLORER,
        db_default=BilledCostSource.COST_EXPLORER,
    )
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-day", "provider_id")
        constraints = [
            models.UniqueConstraint(fields=("provider", "day"), name="%(app_label)s_%(class)s_unique_day"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.day}: ${self.usd}"
