"""Fleet models: inventory (providers, sites, nodes, GPUs, teams, sync runs) and telemetry (readings, health events)."""

from fleet.models.inventory import GPU, InventoryScope, Node, Project, Provider, Site, SyncRun, Team
from fleet.models.telemetry import GpuSample, HealthEvent

__all__ = [
    "GPU",
    "GpuSample",
    "HealthEvent",
    "InventoryScope",
    "Node",
    "Project",
    "Provider",
    "Site",
    "SyncRun",
    "Team",
]
