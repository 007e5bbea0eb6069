"""Fleet models: inventory (providers, sites, nodes, GPUs, teams) and telemetry (readings, health events)."""

from fleet.models.inventory import GPU, InventoryScope, Node, Project, Provider, Site, Team
from fleet.models.telemetry import HealthEvent

__all__ = ["GPU", "HealthEvent", "InventoryScope", "Node", "Project", "Provider", "Site", "Team"]
