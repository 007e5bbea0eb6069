"""The optimiser's inputs and outputs: plain frozen dataclasses, no Django, so any caller can build them.

Locations are keys ``"<provider kind>:<region or site>"``: ``"aws:us-east-1"``, ``"gcp:us-central1"``,
``"onprem:dc-1"``. Money is ``Decimal`` in everything a caller sees; the solver works in integer micro-dollars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

POLICY_VERSION = "cost-gravity-1"  # bump when the cost rules change
ALTERNATIVES_MAX = 10


@dataclass(frozen=True, kw_only=True)
class DatasetIn:
    """An input dataset: its size and the location that holds it."""

    id: int
    name: str
    size_bytes: int
    location: str


@dataclass(frozen=True, kw_only=True)
class JobIn:
    """A pending job and its constraints.

    ``gpu_model`` is a catalogue key (``H100``); ``None`` with ``min_gpu_memory_mib`` set means any GPU with at
    least that much memory. ``allowed_providers`` / ``allowed_regions`` empty means any; a region matches a cloud
    region or an on-prem site name. ``order`` (submission order) breaks every tie, so results are deterministic.
    ``use_nodes`` False: only cloud offers (its team's quota leaves it no GPUs of the existing nodes).
    """

    id: int
    name: str
    gpu_count: int
    gpu_model: str | None = None
    min_gpu_memory_mib: int | None = None
    expected_hours: Decimal
    dataset_ids: tuple[int, ...] = ()
    priority: int = 0
    max_usd_per_h: Decimal | None = None
    spot_allowed: bool = False
    allowed_providers: frozenset[str] = frozenset()
    allowed_regions: frozenset[str] = frozenset()
    order: int = 0
    use_nodes: bool = True


@dataclass(frozen=True, kw_only=True)
class NodeIn:
    """An existing node with free GPUs.

    ``region`` is the cloud region, or the site name for on-prem. ``usd_per_gpu_h``: for cloud nodes the
    instance $/h ÷ its GPUs; for owned nodes the amortised $/GPU-h plus expected energy $/GPU-h.
    """

    id: int
    name: str
    location: str
    provider_kind: str
    region: str
    gpu_model: str
    gpu_memory_mib: int
    free_gpus: int
    usd_per_gpu_h: Decimal
    spot: bool = False  # a spot instance: only jobs that allow spot may use it


@dataclass(frozen=True, kw_only=True)
class OfferIn:
    """A launchable cloud offer: one instance type, region and purchase option (on-demand and spot are two)."""

    provider_kind: str
    region: str
    location: str
    instance_type: str
    gpu_model: str
    gpu_memory_mib: int
    gpu_count: int
    usd_per_h: Decimal
    spot: bool = False


class MoveUnpriceable(LookupError):
    """Raised by a Network that cannot price a move (no rate for the route): the optimiser treats every
    candidate needing that move as infeasible for the job, and the job may still go elsewhere."""


class Network(Protocol):
    """What moving data between two locations costs and takes (the caller backs it with its egress tariff)."""

    def egress_usd(self, src: str, dst: str, size_bytes: int) -> Decimal:
        """$ to move ``size_bytes`` from ``src`` to ``dst``; may raise MoveUnpriceable (that candidate is out)."""

    def transfer_s(self, src: str, dst: str, size_bytes: int) -> float:
        """Seconds to move ``size_bytes`` from ``src`` to ``dst``."""


@dataclass(frozen=True)
class Move:
    """One dataset that must travel to the candidate's location."""

    dataset_id: int
    source: str
    destination: str
    size_bytes: int
    usd: Decimal
    seconds: float


@dataclass(slots=True)
class Candidate:
    """One place a job could run, with its cost broken down."""

    kind: Literal["node", "offer"]
    node_id: int | None
    offer: OfferIn | None
    location: str
    gpus: int
    instance_count: int
    usd_per_h: Decimal
    compute_usd: Decimal
    egress_usd: Decimal
    total_usd: Decimal
    transfer_s: float
    moves: list[Move] = field(default_factory=list)
    label: str = ""


@dataclass
class Decision:
    """Where a job goes, and the ranked alternatives (chosen first, at most ``ALTERNATIVES_MAX``)."""

    job_id: int
    chosen: Candidate
    alternatives: list[Candidate]


@dataclass
class BatchResult:
    """A batch's placements, and the jobs left pending with a human-readable reason."""

    decisions: dict[int, Decision] = field(default_factory=dict)
    unplaced: dict[int, str] = field(default_factory=dict)

    def total_usd(self) -> Decimal:
        """The batch's total cost (compute + egress) over its placed jobs."""
        return sum((d.chosen.total_usd for d in self.decisions.values()), Decimal(0))
