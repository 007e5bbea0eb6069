"""Choice sets of the fleet app."""

from django.db import models


class ProviderKind(models.TextChoices):
    """Where capacity comes from."""

    AWS = "aws", "AWS"
    GCP = "gcp", "Google Cloud"
    ONPREM = "onprem", "On-prem"


class Continent(models.TextChoices):
    """Continent of a site: the coarse egress class between two locations."""

    NORTH_AMERICA = "north-america", "North America"
    SOUTH_AMERICA = "south-america", "South America"
    EUROPE = "europe", "Europe"
    ASIA = "asia", "Asia"
    MIDDLE_EAST = "middle-east", "Middle East"
    AFRICA = "africa", "Africa"
    OCEANIA = "oceania", "Oceania"


class NodeLifecycle(models.TextChoices):
    """How a node is paid for: cloud purchase options, or owned hardware."""

    ON_DEMAND = "on-demand", "On-demand"
    SPOT = "spot", "Spot"
    RESERVED = "reserved", "Reserved"
    OWNED = "owned", "Owned"


CLOUD_LIFECYCLES = (NodeLifecycle.ON_DEMAND, NodeLifecycle.SPOT, NodeLifecycle.RESERVED)


class NodeState(models.TextChoices):
    """Lifecycle state of a node as the inventory and telemetry last saw it."""

    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    TERMINATED = "terminated", "Terminated"
    UNREACHABLE = "unreachable", "Unreachable"


class NodeSource(models.TextChoices):
    """Who created a node row, and so who may change or retire it."""

    MANUAL = "manual", "Registered (API or admin)"
    IMPORT = "import", "Bulk import"
    AWS = "aws", "AWS inventory sync"
    GCP = "gcp", "GCP inventory sync"


class GpuSliceKind(models.TextChoices):
    """How a GPU is shared between teams."""

    MIG = "mig", "MIG instance"
    TIME_SLICE = "time-slice", "Time-sliced replica"


class HealthEventKind(models.TextChoices):
    """What went wrong with a GPU, as telemetry reports it."""

    XID = "xid", "XID error"
    ECC_SBE = "ecc-sbe", "ECC single-bit errors"
    ECC_DBE = "ecc-dbe", "ECC double-bit errors"
    GPU_LOST = "gpu-lost", "GPU lost"


class TelemetrySourceKind(models.TextChoices):
    """The three ways telemetry comes in (docs/telemetry.md): scraped by shards, pushed, or read from Prometheus."""

    SCRAPE_SHARD = "scrape-shard", "Scrape shard"
    REMOTE_WRITE = "remote-write", "Prometheus remote-write"
    PROMQL = "promql", "PromQL source"
