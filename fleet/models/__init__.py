"""Fleet models: inventory (providers, sites, nodes, GPUs, teams, sync runs) and telemetry (health events,
PromQL sources, source health)."""

from fleet.models.inventory import GPU, GpuSlice, InventoryScope, Node, Project, Provider, Site, SyncRun, Team
from fleet.models.telemetry import GpuSample, HealthEvent, PromQLSource, TelemetrySourceHealth

__all__ = [
    "GPU",
    "GpuSlice",
    "GpuSample",
    "HealthEvent",
    "InventoryScope",
    "Node",
    "Project",
    "PromQLSource",
    "Provider",
    "Site",
    "SyncRun",
    "Team",
    "TelemetrySourceHealth",
]
