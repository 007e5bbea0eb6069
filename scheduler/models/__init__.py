"""Scheduler models: datasets, jobs and their placements, the placement runs people ask for, team quotas."""

from scheduler.models.jobs import Dataset, Job, Placement
from scheduler.models.quotas import TeamQuota
from scheduler.models.runs import PlaceRun

__all__ = ["Dataset", "Job", "PlaceRun", "Placement", "TeamQuota"]
