"""A job's life: submit, edit while pending, move through its states, and the one rule that sends placed jobs
back to the queue.

These are services: they write and return what they wrote, and never enqueue work. What runs next (a placement
run when a job arrives or frees GPUs) is enqueued by the caller, a view or a task, with
``scheduler.tasks.jobs_place_enqueue`` (on commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.models import EgressRecord
from scheduler.choices import ENDED_JOB_STATES, JobState
from scheduler.models import Job, Placement

TRANSITIONS: dict[str, tuple[str, ...]] = {
    JobState.PENDING: (JobState.CANCELLED,),
    JobState.PLACED: (JobState.RUNNING, JobState.FAILED, JobState.CANCELLED),
    JobState.RUNNING: (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED),
}
REASON_MAX_CHARS = 500  # Job.pending_reason's length

# What a submission sets (datasets aside, a many-to-many); all of it but the team can change while pending.
JOB_INPUT_FIELDS = (
    "name",
    "team",
    "project",
    "gpu_count",
    "gpu_model",
    "min_gpu_memory_mib",
    "expected_hours",
    "priority",
    "max_usd_per_h",
    "spot_allowed",
    "allowed_providers",
    "allowed_regions",
)
JOB_EDITABLE_FIELDS = tuple(name for name in JOB_INPUT_FIELDS if name != "team")


class TransitionError(Exception):
    """A job state change that its current state does not allow."""


def job_fields(data: dict) -> dict:
    """The job fields of validated submission data."""
    return {name: data[name] for name in JOB_INPUT_FIELDS if name in data}


@transaction.atomic
def job_submit(*, data: dict, user=None) -> Job:
    """Create a pending job from validated data (``datasets``: Dataset objects); the caller queues a placement."""
    job = Job.objects.create(
        **job_fields(data), submitted_by=user if user and user.is_authenticated else None, state=JobState.PENDING
    )
    job.datasets.set(data.get("datasets") or [])
    return job


@transaction.atomic
def job_update(*, job: Job, data: dict) -> Job:
    """Change a pending job's request (validated data); raise TransitionError once it is placed. The caller queues
    a placement (the new request may fit where the old one did not)."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.state != JobState.PENDING:
        raise TransitionError(f"A {job.state} job cannot be edited; only pending jobs can.")
    fields = [name for name in JOB_EDITABLE_FIELDS if name in data]
    for name in fields:
        setattr(job, name, data[name])
    if fields:
        job.save(update_fields=fields)
    if "datasets" in data:
        job.datasets.set(data["datasets"])
    return job


@dataclass(frozen=True)
class Transition:
    """A job state change that happened: the job after it, and the state it left (read under the row lock)."""

    job: Job
    previous: str

    @property
    def frees_gpus(self) -> bool:
        """Whether the job gave GPUs back (it held them and has ended): the moment to queue a placement run."""
        return self.job.state in ENDED_JOB_STATES and self.previous != JobState.PENDING


@transaction.atomic
def job_transition(*, job: Job, state: str, now: datetime | None = None) -> Transition:
    """Move a job to ``state`` (placed→running→succeeded/failed; any live state→cancelled); raise TransitionError.

    Ending a job keeps its placement as history; its GPUs count as free again because only placed and running
    jobs hold GPUs (``Transition.frees_gpus``). A placed job cancelled before it ran drops its planned egress (the data
    never moved); a job that starts running makes its active placement's planned egress real (planned=False,
    occurred_at=now), so the spend reads count it.
    """
    now = now or timezone.now()
    job = Job.objects.select_for_update().get(pk=job.pk)
    if state not in TRANSITIONS.get(job.state, ()):
        allowed = ", ".join(TRANSITIONS.get(job.state, ())) or "none (it has ended)"
        raise TransitionError(f"A {job.state} job cannot become {state}; allowed: {allowed}.")
    previous, job.state = job.state, state
    fields = ["state"]
    if state == JobState.RUNNING:
        job.started_at = now
        fields.append("started_at")
        EgressRecord.objects.filter(placement__job=job, placement__active=True, planned=True).update(
            planned=False, occurred_at=now
        )
    if state in ENDED_JOB_STATES:
        job.ended_at = now
        fields.append("ended_at")
    if previous == JobState.PLACED and state == JobState.CANCELLED:
        EgressRecord.objects.filter(placement__job=job, planned=True).delete()
    job.save(update_fields=fields)
    return Transition(job=job, previous=previous)


def placements_requeue(*, placement_ids: list[int], reason: str) -> int:
    """The one re-queue rule: these placements go inactive, their planned egress goes (the data never moved; the
    next placement plans its own), and the jobs they were the active placement of, if still placed, go back to
    pending with ``reason``. A job that started running or ended since, or that was placed again elsewhere (its
    placement here already inactive), is left as it is. Call it in a transaction that holds the jobs' rows;
    returns how many jobs went back to the queue."""
    job_ids = list(Placement.objects.filter(pk__in=placement_ids, active=True).values_list("job_id", flat=True))
    EgressRecord.objects.filter(placement_id__in=placement_ids, planned=True).delete()
    Placement.objects.filter(pk__in=placement_ids).update(active=False)
    return Job.objects.filter(pk__in=job_ids, state=JobState.PLACED).update(
        state=JobState.PENDING, pending_reason=reason[:REASON_MAX_CHARS]
    )
