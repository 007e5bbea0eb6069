"""Quotas and fair share when placing: caps per team and GPU model, borrowing in fair-share order, reclaim.

A team with a quota (``scheduler.TeamQuota``) for a GPU model (or for all models, an empty model) may hold at most
guarantee + borrow limit GPUs of it on the fleet's existing nodes; GPUs past its guarantee are borrowed and their
placements preemptible. Teams without a quota are not limited (what the scheduler did before quotas). Cloud offers
are neither counted nor capped: a job its quota keeps off the existing nodes may still launch an offer.

A run with quotas places in two rounds (``quota_place_batch``), each a ``place_batch`` over what is still free:

1. jobs within their team's guarantee, and every job of teams without a quota on its GPU model;
2. the rest (borrowers): admitted one job at a time to the lowest share first (usage ÷ weight, recomputed after
   each), while the team stays within guarantee + borrow and the model has idle GPUs left; a job over its cap
   keeps only cloud offers and, if none fits, waits with "waiting for quota: …".

A job of round 1 left unplaced (its team is below its guarantee but the GPUs are taken) has capacity reclaimed for
it (``reclaim_victims``): the newest preemptible placements of teams over their guarantee on one node of its model,
just enough for it to fit there. Only placed jobs that have not started are re-queued: a running job's process is
not the scheduler's to stop. Pure planning here; ``scheduler.placements.jobs_place`` writes.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from fleet.catalog import gpu_key
from fleet.models import GPU
from scheduler.choices import ACTIVE_JOB_STATES, JobState, TargetKind
from scheduler.inputs import FleetInputs
from scheduler.models import Placement, TeamQuota
from scheduler.models.quotas import ALL_MODELS_TEXT
from scheduler.optimizer import BatchResult, DatasetIn, JobIn, NodeIn, place_batch
from scheduler.optimizer.candidates import NODE_KIND, Context

QUOTA_REASON = "waiting for quota: {team} uses {used} of its {cap} GPUs of {model} (guarantee {g} + borrow {b})"
SHARE_REASON = (
    "waiting for quota: the idle {what} GPUs went to teams with a lower fair share (usage ÷ weight) first; "
    "{team} uses {used} of its {cap} GPUs of {model} (guarantee {g} + borrow {b})"
)
IDLE_REASON = (
    "waiting for quota: no idle {what} GPUs are left to borrow; "
    "{team} uses {used} of its {cap} GPUs of {model} (guarantee {g} + borrow {b})"
)
RECLAIM_REASON = "Re-queued: its borrowed {model} GPUs were reclaimed for {team}, which is below its guarantee."


@dataclass(frozen=True)
class Quota:
    """A quota row as the planner sees it."""

    team_id: int
    team: str
    gpu_model: str  # "" for all GPU models together
    guaranteed: int
    borrow: int
    weight: Decimal

    @property
    def cap(self) -> int:
        """Guarantee + borrow limit."""
        return self.guaranteed + self.borrow

    @property
    def model_text(self) -> str:
        """``H100`` or ``all GPU models``."""
        return self.gpu_model or ALL_MODELS_TEXT


@dataclass
class Usage:
    """Quotas by (team id, GPU model) and the GPUs each team holds on existing nodes: per model, and under ``""``
    all models together."""

    quotas: dict[tuple[int, str], Quota] = field(default_factory=dict)
    used: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))

    def copy(self) -> Usage:
        """An independent copy (to try admissions)."""
        return Usage(quotas=self.quotas, used=defaultdict(int, self.used))

    def applicable(self, team_id: int, models: Iterable[str]) -> list[Quota]:
        """The team's quotas that govern a job on any of ``models``: each model's, and the all-models one."""
        keys = [(team_id, m) for m in sorted(set(models)) if m] + [(team_id, "")]
        return [self.quotas[k] for k in keys if k in self.quotas]

    def add(self, team_id: int, model: str, gpus: int) -> None:
        """Count ``gpus`` more (fewer, when negative) of ``model`` for the team."""
        if model:  # a node of no known model counts once, in the all-models figure
            self.used[team_id, model] += gpus
        self.used[team_id, ""] += gpus

    def add_all(self, team_id: int, models: Iterable[str], gpus: int) -> None:
        """Count ``gpus`` against every model a job may land on (admission is conservative), and once in all."""
        for model in set(models):
            if model:
                self.used[team_id, model] += gpus
        self.used[team_id, ""] += gpus

    def blocking(self, team_id: int, models: Iterable[str], gpus: int, *, within_guarantee: bool) -> Quota | None:
        """The first quota that ``gpus`` more would break (its guarantee, or its guarantee + borrow); None: fits."""
        for quota in self.applicable(team_id, models):
            limit = quota.guaranteed if within_guarantee else quota.cap
            if self.used[team_id, quota.gpu_model] + gpus > limit:
                return quota
        return None

    def borrowing(self, team_id: int, model: str) -> bool:
        """Whether the team holds more GPUs of ``model`` (or of all models) than a quota guarantees."""
        return any(self.used[team_id, q.gpu_model] > q.guaranteed for q in self.applicable(team_id, [model]))

    def share(self, team_id: int, models: Iterable[str]) -> Decimal:
        """The team's fair share for a job on ``models``: its highest usage ÷ weight over the quotas that apply."""
        quotas = self.applicable(team_id, models)
        return max((Decimal(self.used[team_id, q.gpu_model]) / q.weight for q in quotas), default=Decimal(0))

    def reason(self, quota: Quota) -> str:
        """``waiting for quota: <team> uses X of its Y GPUs of <model> (guarantee G + borrow B)``."""
        return QUOTA_REASON.format(**_reason_fields(self, quota))


def usage_load(*, node_models: Mapping[int, str] | None = None) -> Usage:
    """Every quota and what its team holds now: GPUs of active node placements of placed or running jobs, by the
    node's GPU model (``node_models``: node id → model; the model of other nodes is read from their GPUs)."""
    usage = Usage()
    for row in TeamQuota.objects.select_related("team").order_by("pk"):
        usage.quotas[row.team_id, row.gpu_model] = Quota(
            team_id=row.team_id,
            team=row.team.name,
            gpu_model=row.gpu_model,
            guaranteed=row.guaranteed_gpus,
            borrow=row.borrow_limit_gpus,
            weight=Decimal(row.weight),
        )
    if not usage.quotas:
        return usage
    teams = {team_id for team_id, _ in usage.quotas}
    for row in node_placements(team_ids=teams, node_models=node_models):
        usage.add(row.team_id, row.gpu_model, row.gpus)
    return usage


@dataclass(frozen=True)
class Held:
    """An active placement on an existing node, as quotas count it."""

    placement_id: int
    job_id: int
    team_id: int
    node_id: int
    gpu_model: str
    gpus: int
    preemptible: bool
    state: str


def node_placements(*, team_ids: Iterable[int], node_models: Mapping[int, str] | None = None) -> list[Held]:
    """Active node placements of placed or running jobs of ``team_ids``, newest first."""
    rows = list(
        Placement.objects.filter(
            active=True,
            target_kind=TargetKind.NODE,
            node__isnull=False,
            job__state__in=ACTIVE_JOB_STATES,
            job__team_id__in=list(team_ids),
        )
        .order_by("-created", "-pk")
        .values_list("pk", "job_id", "job__team_id", "node_id", "gpu_count", "preemptible", "job__state")
    )
    models = dict(node_models or {})
    unknown = {row[3] for row in rows} - set(models)
    for node_id, name in (
        GPU.objects.filter(node_id__in=unknown, lost=False).order_by("node_id", "index").values_list("node_id", "model")
    ):
        models.setdefault(node_id, gpu_key(name))
    return [
        Held(pk, job_id, team_id, node_id, models.get(node_id, ""), gpus, preemptible, state)
        for pk, job_id, team_id, node_id, gpus, preemptible, state in rows
    ]


def job_models(job: JobIn, nodes: Iterable[NodeIn]) -> frozenset[str]:
    """The GPU models of existing nodes a job could use: its model, or every model with enough memory."""
    if job.gpu_model:
        return frozenset((job.gpu_model,))
    mem = job.min_gpu_memory_mib
    return frozenset(n.gpu_model for n in nodes if mem is None or n.gpu_memory_mib >= mem)


@dataclass
class QuotaPlan:
    """What the two rounds chose: decisions and reasons, the jobs placed on borrowed GPUs, and the jobs within
    their guarantee left unplaced (reclaim may make room for them)."""

    result: BatchResult = field(default_factory=BatchResult)
    preemptible: set[int] = field(default_factory=set)
    waiting: list[JobIn] = field(default_factory=list)
    models: dict[int, frozenset[str]] = field(default_factory=dict)
    free: dict[int, int] = field(default_factory=dict)  # node id -> free GPUs after round 1


def quota_place_batch(
    jobs: list[JobIn],
    *,
    team_of: Mapping[int, int],
    usage: Usage,
    inputs: FleetInputs,
    datasets: Mapping[int, DatasetIn],
    method: str,
) -> QuotaPlan:
    """Place ``jobs`` in two rounds (within guarantee, then borrowing in fair-share order); ``usage`` is updated
    with what was placed on existing nodes."""
    plan = QuotaPlan()
    every_node = list(inputs.priced_nodes.values()) or inputs.nodes
    node_model = {n.id: n.gpu_model for n in every_node}
    plan.models = {job.id: job_models(job, every_node) for job in jobs}
    free = {n.id: n.free_gpus for n in inputs.nodes}
    trial = usage.copy()
    first, rest, guaranteed = [], [], set()
    for job in sorted(jobs, key=lambda j: (-j.priority, j.order, j.id)):
        team, models = team_of[job.id], plan.models[job.id]
        if not usage.applicable(team, models):
            first.append(job)
        elif trial.blocking(team, models, job.gpu_count, within_guarantee=True) is None:
            trial.add_all(team, models, job.gpu_count)
            first.append(job)
            guaranteed.add(job.id)
        else:
            rest.append(job)

    def run(batch: list[JobIn]) -> BatchResult:
        nodes = [replace(n, free_gpus=free[n.id]) for n in inputs.nodes if free[n.id] > 0]
        part = place_batch(
            batch, nodes=nodes, offers=inputs.offers, datasets=datasets, network=inputs.network, method=method
        )
        for job in sorted(batch, key=lambda j: (-j.priority, j.order, j.id)):
            decision = part.decisions.get(job.id)
            if decision is None or decision.chosen.kind != "node":
                continue
            node_id, gpus = decision.chosen.node_id, decision.chosen.gpus
            free[node_id] -= gpus
            usage.add(team_of[job.id], node_model[node_id], gpus)
            if usage.borrowing(team_of[job.id], node_model[node_id]):
                plan.preemptible.add(job.id)
        plan.result.decisions.update(part.decisions)
        plan.result.unplaced.update(part.unplaced)
        return part

    placed_first = run(first) if first else BatchResult()
    plan.waiting = [j for j in first if j.id in guaranteed and j.id in placed_first.unplaced]
    plan.free = dict(free)
    if not rest:
        return plan
    admitted, held = _fair_share_admit(
        rest, team_of=team_of, usage=usage, models=plan.models, free=free, node_model=node_model
    )
    placed_rest = run(admitted + [replace(job, use_nodes=False) for job in rest if job.id in held])
    for job_id, (quota, why) in held.items():
        if job_id in placed_rest.unplaced:
            text = usage.reason(quota)
            if why != "cap":
                what = "/".join(sorted(plan.models[job_id])) or "GPU"
                template = SHARE_REASON if why == "share" else IDLE_REASON
                text = template.format(what=what, **_reason_fields(usage, quota))
            plan.result.unplaced[job_id] = text
    return plan


def _reason_fields(usage: Usage, quota: Quota) -> dict:
    """The figures of a "waiting for quota" reason: the team, what it uses now, its cap, guarantee and borrow."""
    return {
        "team": quota.team,
        "used": usage.used[quota.team_id, quota.gpu_model],
        "cap": quota.cap,
        "model": quota.model_text,
        "g": quota.guaranteed,
        "b": quota.borrow,
    }


def _fair_share_admit(
    rest: list[JobIn],
    *,
    team_of: Mapping[int, int],
    usage: Usage,
    models: Mapping[int, frozenset[str]],
    free: Mapping[int, int],
    node_model: Mapping[int, str],
) -> tuple[list[JobIn], dict[int, tuple[Quota, bool]]]:
    """Borrowers admitted to the idle GPUs lowest share first, and those held back: job id → (the quota that
    holds it, why: "cap" (its guarantee + borrow), "share" (the idle GPUs went to other teams' borrowers first)
    or "idle" (no idle GPU of its model was left to borrow at all))."""
    idle: dict[str, int] = defaultdict(int)
    for node_id, count in free.items():
        idle[node_model[node_id]] += max(count, 0)
    queues: dict[int, deque[JobIn]] = {}
    for job in rest:  # already in priority, then submission, order
        queues.setdefault(team_of[job.id], deque()).append(job)
    trial = usage.copy()
    admitted, held = [], {}
    lent: dict[str, set[int]] = defaultdict(set)  # GPU model → teams admitted to borrow it in this run
    while queues:
        team = min(queues, key=lambda t: (trial.share(t, models[queues[t][0].id]), t))
        job = queues[team].popleft()
        if not queues[team]:
            del queues[team]
        job_models_ = models[job.id]
        over = trial.blocking(team, job_models_, job.gpu_count, within_guarantee=False)
        if over is not None:
            held[job.id] = (over, "cap")
            continue
        fits = sorted((m for m in job_models_ if idle[m] >= job.gpu_count), key=lambda m: (-idle[m], m))
        if not fits:
            others = any(lent[m] - {team} for m in job_models_)
            held[job.id] = (trial.applicable(team, job_models_)[0], "share" if others else "idle")
            continue
        idle[fits[0]] -= job.gpu_count
        lent[fits[0]].add(team)
        trial.add_all(team, job_models_, job.gpu_count)
        admitted.append(job)
    return admitted, held


def reclaim_victims(
    plan: QuotaPlan,
    *,
    team_of: Mapping[int, int],
    team_names: Mapping[int, str],
    usage: Usage,
    inputs: FleetInputs,
    datasets: Mapping[int, DatasetIn],
) -> dict[int, str]:
    """Placements to re-queue so that jobs within their guarantee fit: placement id → the re-queue reason.

    For each waiting job (priority order), on each node of its model, the newest preemptible placements (placed,
    not running) of other teams still over their guarantee, until the job fits there; the node needing the fewest
    reclaimed GPUs wins (then the lowest id), and only when the job's constraints accept that node.
    """
    if not plan.waiting:
        return {}
    teams = {team_id for team_id, _ in usage.quotas}
    node_models = {n.id: n.gpu_model for n in inputs.priced_nodes.values()}
    candidates: dict[int, list[Held]] = defaultdict(list)
    for held in node_placements(team_ids=teams, node_models=node_models):
        if held.preemptible and held.state == JobState.PLACED and held.node_id in inputs.priced_nodes:
            candidates[held.node_id].append(held)  # newest first
    free = defaultdict(int, plan.free)
    trial = usage.copy()
    victims: dict[int, str] = {}
    for job in plan.waiting:
        team = team_of[job.id]
        if any(ds_id not in datasets for ds_id in job.dataset_ids):
            continue
        best = None
        for node_id in sorted(candidates):
            node = inputs.priced_nodes[node_id]
            if node.gpu_model not in plan.models[job.id]:
                continue
            have, picked, owners = free[node_id], [], trial.copy()
            for held in candidates[node_id]:
                if have >= job.gpu_count:
                    break
                if held.placement_id in victims or held.team_id == team:
                    continue
                if not owners.borrowing(held.team_id, held.gpu_model):
                    continue
                picked.append(held)
                have += held.gpus
                owners.add(held.team_id, held.gpu_model, -held.gpus)
            if not picked or have < job.gpu_count:
                continue
            score = (sum(h.gpus for h in picked), node_id)
            if best is not None and score >= best[0]:
                continue
            ctx = Context(nodes=[replace(node, free_gpus=have)], offers=[], datasets=datasets, network=inputs.network)
            if any(option.kind == NODE_KIND for option in ctx.options(replace(job, use_nodes=True))):
                best = (score, node_id, picked, have, owners)
        if best is None:
            continue
        _, node_id, picked, have, trial = best
        free[node_id] = have - job.gpu_count
        trial.add(team, node_models[node_id], job.gpu_count)
        for held in picked:
            victims[held.placement_id] = RECLAIM_REASON.format(model=held.gpu_model, team=team_names[team])
    return victims
