"""Placement: datasets, jobs and cost/data-gravity placement (built in a later issue)."""

from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"
