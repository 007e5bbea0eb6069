"""Scheduler models: datasets, jobs and their placements."""

from scheduler.models.jobs import Dataset, Job, Placement

__all__ = ["Dataset", "Job", "Placement"]
