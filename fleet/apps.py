"""Fleet inventory: providers, sites, nodes, GPUs, teams and projects."""

from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "Fleet"
