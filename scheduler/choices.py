"""Choice sets of the scheduler app."""

from django.db import models


class JobState(models.TextChoices):
    """Where a job is in its life."""

    PENDING = "pending", "Pending"
    PLACED = "placed", "Placed"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATES = (JobState.PLACED, JobState.RUNNING)
ENDED_JOB_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class TargetKind(models.TextChoices):
    """What a placement puts a job on."""

    NODE = "node", "Free GPUs on an existing node"
    OFFER = "offer", "A cloud offer to launch"


class LaunchStatus(models.TextChoices):
    """What happened to a cloud offer's launch."""

    NONE = "", "Nothing to launch"
    DRY_RUN = "dry-run", "Dry run: recorded, not called"
    LAUNCHED = "launched", "Launched"
    FAILED = "failed", "Launch failed"
