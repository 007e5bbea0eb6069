"""Reads of the scheduler for its pages and API."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from django.db.models import Prefetch, QuerySet

from fleet.scoping import team_scope
from scheduler.choices import JobState
from scheduler.models import Dataset, Job, Placement, PlaceRun, TeamQuota
from scheduler.placements import PlaceReport
from scheduler.quotas import usage_load

QUEUE_ROWS_MAX = 200
# Jobs and placements are team-scoped (fleet.scoping): every page and partial read of them is restricted with
# ``.restrict(user)`` (a viewer who is a member of teams sees only those teams' jobs and placements, with their
# costs, alternatives and planned egress); the API's viewsets with fleet.scoping.TeamScopedViewMixin. Datasets
# carry no team: everyone sees them.


def job_list() -> QuerySet[Job]:
    """Jobs with team and project, highest priority first, then oldest."""
    return Job.objects.select_related("team", "project").order_by("-priority", "created", "pk")


def placement_list() -> QuerySet[Placement]:
    """Placements with their job and node, newest first."""
    return Placement.objects.select_related("job", "node").order_by("-created", "-pk")


def dataset_list() -> QuerySet[Dataset]:
    """Datasets with their site."""
    return Dataset.objects.select_related("site__provider").order_by("name", "pk")


@dataclass
class Queue:
    """The scheduler queue as the page shows it."""

    pending: list[Job]
    placed: list[Job]
    running: list[Job]
    pending_count: int  # all pending jobs, not only the rows shown (at most ``limit``)


def job_queue(*, user, limit: int = QUEUE_ROWS_MAX) -> Queue:
    """Pending (with reasons), placed and running jobs that ``user`` may see (at most ``limit`` each), each with its
    active placement, and how many of those are pending in all: five queries (pending; placed and running with
    their placements), plus a count when the pending rows are cut at ``limit``."""
    active = Prefetch(
        "placements", queryset=Placement.objects.filter(active=True).select_related("node"), to_attr="active_placements"
    )
    rows = {}
    for state in (JobState.PENDING, JobState.PLACED, JobState.RUNNING):
        query = job_list().restrict(user).filter(state=state)
        if state != JobState.PENDING:
            query = query.prefetch_related(active)
        rows[state] = list(query[:limit])
    for state in (JobState.PENDING,):
        for job in rows[state]:
            job.active_placements = []
    pending = rows[JobState.PENDING]
    if len(pending) < limit:
        pending_count = len(pending)
    else:
        pending_count = Job.objects.filter(state=JobState.PENDING).restrict(user).count()
    return Queue(
        pending=pending, placed=rows[JobState.PLACED], running=rows[JobState.RUNNING], pending_count=pending_count
    )


def job_detail(*, pk: int, user) -> Job:
    """One job that ``user`` may see, with its datasets and every placement (the active one first); raises
    Job.DoesNotExist for a job of another team, as for one that does not exist."""
    return (
        job_list()
        .restrict(user)
        .prefetch_related(
            "datasets",
            Prefetch(
                "placements",
                queryset=Placement.objects.select_related("node", "site").order_by("-active", "-created", "-pk"),
            ),
        )
        .get(pk=pk)
    )


def place_report_visible(report: PlaceReport, *, user) -> PlaceReport:
    """``report`` keeping only the placed and unplaced jobs ``user`` may see: a placement run places every team's
    pending jobs together, and a user limited to some teams is told only about theirs (``launches`` stays the
    run's count)."""
    if team_scope(user) is None:
        return report
    ids = set(report.placed) | set(report.unplaced) | set(report.reclaimed)
    visible = set(Job.objects.filter(pk__in=ids).restrict(user).values_list("pk", flat=True))
    return replace(
        report,
        placed=[pk for pk in report.placed if pk in visible],
        unplaced={pk: reason for pk, reason in report.unplaced.items() if pk in visible},
        reclaimed=[pk for pk in report.reclaimed if pk in visible],
    )


def place_run_report(run: PlaceRun, *, user) -> dict | None:
    """The report of a finished placement run as ``user`` may read it (``place_report_visible``); None until done."""
    if run.report is None:
        return None
    report = PlaceReport(
        placed=list(run.report["placed"]),
        unplaced={int(pk): reason for pk, reason in run.report["unplaced"].items()},
        launches=run.report["launches"],
        method=run.report["method"],
        skipped=run.report["skipped"],
        reclaimed=list(run.report.get("reclaimed", [])),
    )
    return place_report_visible(report, user=user).as_dict()


@dataclass
class QuotaRow:
    """A team quota with what the team holds of it now, for the queue page and the API."""

    quota: TeamQuota
    used_gpus: int  # GPUs of its placed and running jobs on existing nodes of the quota's model (or of all)
    borrowed_gpus: int  # of those, beyond its guarantee
    share: Decimal | None  # used ÷ (guarantee + borrow); None when both are 0

    @property
    def share_pct(self) -> Decimal | None:
        """The share in % (for ``|pct``)."""
        return None if self.share is None else self.share * 100

    @property
    def fair_share(self) -> Decimal:
        """Usage ÷ weight: borrowers with the lowest go first (``scheduler.quotas``)."""
        return (Decimal(self.used_gpus) / self.quota.weight).quantize(Decimal("0.01"))


def quota_rows(*, user=None, quotas: QuerySet[TeamQuota] | None = None) -> list[QuotaRow]:
    """The quotas ``user`` may see (their teams', for a viewer limited to teams), or the given ones, each with its
    team's usage (``scheduler.quotas.usage_load``: two queries, three with placements)."""
    if quotas is None:
        quotas = TeamQuota.objects.restrict(user) if user is not None else TeamQuota.objects.all()
        quotas = quotas.select_related("team").order_by("team__name", "gpu_model", "pk")
    rows = list(quotas)
    if not rows:
        return []
    usage = usage_load()
    out = []
    for quota in rows:
        used = usage.used[quota.team_id, quota.gpu_model]
        cap = quota.cap_gpus
        out.append(
            QuotaRow(
                quota=quota,
                used_gpus=used,
                borrowed_gpus=max(used - quota.guaranteed_gpus, 0),
                share=(Decimal(used) / cap).quantize(Decimal("0.0001")) if cap else None,
            )
        )
    return out
