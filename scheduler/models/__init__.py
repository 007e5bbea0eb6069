"""Scheduler models: datasets, jobs and their placements, and the placement runs people ask for."""

from scheduler.models.jobs import Dataset, Job, Placement
from scheduler.models.runs import PlaceRun

__all__ = ["Dataset", "Job", "PlaceRun", "Placement"]
