"""Reads of the scheduler for its pages and API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from scheduler.choices import JobState
from scheduler.models import Dataset, Job, Placement

QUEUE_ROWS_MAX = 200


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


def job_queue(*, limit: int = QUEUE_ROWS_MAX) -> Queue:
    """Pending (with reasons), placed and running jobs (at most ``limit`` each), each with its active placement,
    and how many jobs are pending in all: five queries (pending; placed and running with their placements),
    plus a count when the pending rows are cut at ``limit``."""
    active = Prefetch(
        "placements", queryset=Placement.objects.filter(active=True).select_related("node"), to_attr="active_placements"
    )
    rows = {}
    for state in (JobState.PENDING, JobState.PLACED, JobState.RUNNING):
        query = job_list().filter(state=state)
        if state != JobState.PENDING:
            query = query.prefetch_related(active)
        rows[state] = list(query[:limit])
    for state in (JobState.PENDING,):
        for job in rows[state]:
            job.active_placements = []
    pending = rows[JobState.PENDING]
    pending_count = len(pending) if len(pending) < limit else Job.objects.filter(state=JobState.PENDING).count()
    return Queue(
        pending=pending, placed=rows[JobState.PLACED], running=rows[JobState.RUNNING], pending_count=pending_count
    )


def job_detail(*, pk: int) -> Job:
    """One job with its datasets and every placement (the active one first)."""
    return (
        job_list()
        .prefetch_related(
            "datasets",
            Prefetch(
                "placements",
                queryset=Placement.objects.select_related("node", "site").order_by("-active", "-created", "-pk"),
            ),
        )
        .get(pk=pk)
    )
