"""Reads of the scheduler for its pages and API."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from django.db.models import Prefetch, QuerySet

from billing.scoping import spend_team_scope
from scheduler.choices import JobState
from scheduler.models import Dataset, Job, Placement

if TYPE_CHECKING:
    from scheduler.services import PlaceReport

QUEUE_ROWS_MAX = 200
# The team a row belongs to, per model that team scoping limits (datasets carry no team: everyone sees them).
TEAM_FIELDS = {Job: "team_id", Placement: "job__team_id"}


def scheduler_scoped(queryset: QuerySet, *, user) -> QuerySet:
    """``queryset`` of jobs or placements limited to the teams whose jobs ``user`` may see.

    The scope is spend's (billing.scoping.spend_team_scope): a viewer who is a member of teams sees only those
    teams' jobs and placements (with their costs, alternatives and planned egress); operators, admins and a
    viewer of no team see every team. Every page and partial read of jobs or placements goes through here (the
    API's viewsets scope the same way with billing.api.spend.TeamScopedMixin).
    """
    scope = spend_team_scope(user)
    if scope is None:
        return queryset
    return queryset.filter(**{f"{TEAM_FIELDS[queryset.model]}__in": scope})


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
        query = scheduler_scoped(job_list(), user=user).filter(state=state)
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
        pending_count = scheduler_scoped(Job.objects.filter(state=JobState.PENDING), user=user).count()
    return Queue(
        pending=pending, placed=rows[JobState.PLACED], running=rows[JobState.RUNNING], pending_count=pending_count
    )


def job_detail(*, pk: int, user) -> Job:
    """One job that ``user`` may see, with its datasets and every placement (the active one first); raises
    Job.DoesNotExist for a job of another team, as for one that does not exist."""
    return (
        scheduler_scoped(job_list(), user=user)
        .prefetch_related(
            "datasets",
            Prefetch(
                "placements",
                queryset=Placement.objects.select_related("node", "site").order_by("-active", "-created", "-pk"),
            ),
        )
        .get(pk=pk)
    )


def place_report_scoped(report: PlaceReport, *, user) -> PlaceReport:
    """``report`` keeping only the placed and unplaced jobs ``user`` may see: a placement run places every team's
    pending jobs together, and a user limited to some teams is told only about theirs (``launches`` stays the
    run's count)."""
    if spend_team_scope(user) is None:
        return report
    ids = set(report.placed) | set(report.unplaced)
    visible = set(scheduler_scoped(Job.objects.filter(pk__in=ids), user=user).values_list("pk", flat=True))
    return replace(
        report,
        placed=[pk for pk in report.placed if pk in visible],
        unplaced={pk: reason for pk, reason in report.unplaced.items() if pk in visible},
    )
