"""Team quotas: GPUs a team is guaranteed per GPU model, how many more it may borrow, and its fair-share weight.

Quotas govern the fleet's existing nodes (on-prem and running cloud nodes: the shared capacity that teams compete
for). A cloud offer launched for a job is that job's own capacity: it is neither counted nor capped. The rules a
quota obeys live in ``TeamQuota.clean`` (``quota_errors``), which the admin, the page form and the API serializer
all run.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Sum

from fleet.catalog import GPU_SPECS, gpu_key
from fleet.choices import NodeState
from fleet.models import GPU
from fleet.scoping import TeamScopedQuerySet

ALL_MODELS_TEXT = "all GPU models"
# Nodes whose GPUs back guarantees: every node that exists and has not ended (stopped nodes may start again).
FLEET_NODE_EXCLUDED_STATES = (NodeState.TERMINATED,)


class TeamQuota(models.Model):
    """A team's share of one GPU model (or, with no model, of all GPUs together) on the fleet's existing nodes."""

    team = models.ForeignKey("fleet.Team", on_delete=models.CASCADE, related_name="quotas")
    gpu_model = models.CharField(
        max_length=32, blank=True, help_text="Catalogue key (H100, A100-80GB…) as jobs name it; empty: all models."
    )
    guaranteed_gpus = models.IntegerField(default=0, help_text="GPUs the team always gets back when it waits.")
    borrow_limit_gpus = models.IntegerField(
        default=0, help_text="GPUs it may use beyond its guarantee while others leave them idle (preemptible)."
    )
    weight = models.DecimalField(
        max_digits=8,
        decimal_places=3,
        default=Decimal("1"),
        help_text="Its share of idle capacity among borrowers: lowest usage ÷ weight borrows first.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("team__name", "gpu_model", "pk")
        constraints = [
            models.UniqueConstraint(fields=("team", "gpu_model"), name="scheduler_teamquota_one_per_model"),
            models.CheckConstraint(condition=models.Q(guaranteed_gpus__gte=0), name="scheduler_teamquota_guar_gte0"),
            models.CheckConstraint(
                condition=models.Q(borrow_limit_gpus__gte=0), name="scheduler_teamquota_borrow_gte0"
            ),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="scheduler_teamquota_weight_gt0"),
        ]

    def __str__(self) -> str:
        return f"{self.team} · {self.model_text}"

    @property
    def model_text(self) -> str:
        """The GPU model in words: ``H100``, or ``all GPU models``."""
        return self.gpu_model or ALL_MODELS_TEXT

    @property
    def cap_gpus(self) -> int:
        """The most GPUs the team may hold of this model: guarantee + borrow limit."""
        return self.guaranteed_gpus + self.borrow_limit_gpus

    def clean(self) -> None:
        """The one rule set of a quota (model, form and API): see ``quota_errors``."""
        super().clean()
        errors = quota_errors(self)
        if errors:
            raise ValidationError(errors)


def fleet_gpus_by_model() -> dict[str, int]:
    """GPUs (not lost) of the fleet's existing nodes per catalogue key, and in all under ``""``."""
    rows = (
        GPU.objects.filter(lost=False, node__ended_at__isnull=True)
        .exclude(node__state__in=FLEET_NODE_EXCLUDED_STATES)
        .values("model")
        .annotate(n=models.Count("pk"))
    )
    counts: dict[str, int] = {"": 0}
    for row in rows:
        key = gpu_key(row["model"])
        counts[key] = counts.get(key, 0) + row["n"]
        counts[""] += row["n"]
    return counts


def quota_errors(quota: TeamQuota) -> dict[str, str]:
    """What contradicts in ``quota``, by field: an unknown GPU model, a negative guarantee or borrow limit, a weight
    that is not positive, or guarantees for the model (over every team) beyond the GPUs the fleet has of it."""
    errors: dict[str, str] = {}
    if quota.gpu_model and quota.gpu_model not in GPU_SPECS:
        errors["gpu_model"] = f"Unknown GPU model {quota.gpu_model!r}; use one of {', '.join(GPU_SPECS)}, or empty."
    if quota.guaranteed_gpus is not None and quota.guaranteed_gpus < 0:
        errors["guaranteed_gpus"] = f"A guarantee cannot be below zero (got {quota.guaranteed_gpus})."
    if quota.borrow_limit_gpus is not None and quota.borrow_limit_gpus < 0:
        errors["borrow_limit_gpus"] = f"A borrow limit cannot be below zero (got {quota.borrow_limit_gpus})."
    if quota.weight is not None and Decimal(quota.weight) <= 0:
        errors["weight"] = f"A fair-share weight must be above zero (got {quota.weight})."
    if errors or quota.guaranteed_gpus is None:
        return errors
    others = TeamQuota.objects.filter(gpu_model=quota.gpu_model).exclude(team_id=quota.team_id)
    promised = (others.aggregate(total=Sum("guaranteed_gpus"))["total"] or 0) + quota.guaranteed_gpus
    fleet = fleet_gpus_by_model().get(quota.gpu_model, 0)
    if promised > fleet:
        errors["guaranteed_gpus"] = (
            f"Guarantees over the fleet: teams would be guaranteed {promised} GPUs of {quota.model_text} "
            f"({quota.guaranteed_gpus} here, {promised - quota.guaranteed_gpus} to other teams), "
            f"but the fleet's existing nodes have {fleet}."
        )
    return errors
