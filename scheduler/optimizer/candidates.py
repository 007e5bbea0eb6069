"""Candidate generation: which pools of existing nodes and which cloud offers can take a job, at what cost.

Equivalent nodes (same location, GPU model, memory and $/GPU-h) are grouped into capacity pools, offers are
indexed by GPU model, and the egress of each (dataset, location) pair is computed once per batch, so a batch
of 10,000 jobs against 10,000 nodes never looks at 10^8 (job, node) pairs. Inside, costs are integer
micro-dollars; the figures a caller sees are rebuilt exactly in ``Decimal`` (``solve.candidate_build``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from scheduler.optimizer.model import DatasetIn, JobIn, Move, MoveUnpriceable, Network, NodeIn, OfferIn

MICRO = 1_000_000
NODE_KIND, OFFER_KIND = 0, 1
PROVIDER_LABELS = {"onprem": "on-prem"}


def usd_text(amount: Decimal) -> str:
    """``Decimal('4')`` → ``"$4.00"``."""
    return f"${amount:,.2f}"


@dataclass
class Pool:
    """Interchangeable existing nodes: same location, GPU model, memory and $/GPU-h; capacity tracked per node."""

    index: int
    location: str
    provider_kind: str
    region: str
    gpu_model: str
    gpu_memory_mib: int
    usd_per_gpu_h: Decimal
    usd_per_gpu_h_f: float
    spot: bool = False
    nodes: list[NodeIn] = field(default_factory=list)
    max_free: int = 0


class Option(NamedTuple):
    """One feasible (job, pool) or (job, offer) pair; tuples sort cheapest first, then by the tie fields."""

    micro: int  # total cost in micro-dollars: compute + egress
    seconds: float  # transfer time of the inputs
    kind: int  # NODE_KIND or OFFER_KIND
    location: str
    tie: int  # a pool's lowest node id or an offer's index: unique per kind, so ``moves`` is never compared
    ref: int  # index into Context.pools or Context.offers
    instance_count: int
    moves: tuple[Move, ...]  # the job's datasets that must travel there

    @property
    def pool(self) -> int | None:
        """Index of the node pool, or None for an offer."""
        return self.ref if self.kind == NODE_KIND else None

    @property
    def offer(self) -> int | None:
        """Index of the offer, or None for a node pool."""
        return self.ref if self.kind == OFFER_KIND else None


class CapacityState:
    """Free GPUs per node while a batch is placed: per pool, heaps of node ids by free count (best fit)."""

    def __init__(self, pools: list[Pool]):
        self.free: dict[int, int] = {}
        self.pool_of: dict[int, int] = {}
        self.buckets: list[list[list[int]]] = []  # [pool][free count] -> heap of node ids
        for pool in pools:
            buckets: list[list[int]] = [[] for _ in range(pool.max_free + 1)]
            for node in pool.nodes:
                self.free[node.id] = node.free_gpus
                self.pool_of[node.id] = pool.index
                buckets[node.free_gpus].append(node.id)
            for ids in buckets:
                heapq.heapify(ids)
            self.buckets.append(buckets)

    def fit(self, pool: int, gpus: int) -> int | None:
        """The node of ``pool`` that best fits ``gpus`` (fewest free GPUs that suffice, then lowest id)."""
        free = self.free
        buckets = self.buckets[pool]
        for count in range(gpus, len(buckets)):
            ids = buckets[count]
            # Lazy deletion: a node id stays in its old bucket after it moves; drop such stale entries here.
            while ids:
                if free[ids[0]] == count:
                    return ids[0]
                heapq.heappop(ids)
        return None

    def copy(self) -> CapacityState:
        """An independent copy (to try an assignment and keep it only if it is better)."""
        other = CapacityState.__new__(CapacityState)
        other.free = dict(self.free)
        other.pool_of = self.pool_of
        other.buckets = [[list(ids) for ids in buckets] for buckets in self.buckets]
        return other

    def restore(self, other: CapacityState) -> None:
        """Take over ``other``'s free GPUs (a copy of this state that was kept)."""
        self.free, self.buckets = other.free, other.buckets

    def release(self, node_id: int, gpus: int) -> None:
        """Give back ``gpus`` GPUs of ``node_id``."""
        self.free[node_id] += gpus
        heapq.heappush(self.buckets[self.pool_of[node_id]][self.free[node_id]], node_id)

    def take(self, node_id: int, gpus: int) -> None:
        """Use ``gpus`` of ``node_id``'s free GPUs."""
        left = self.free[node_id] - gpus
        if left < 0:
            raise ValueError(f"node {node_id} has only {self.free[node_id]} free GPUs")
        self.free[node_id] = left
        heapq.heappush(self.buckets[self.pool_of[node_id]][left], node_id)


class Context:
    """Everything about one batch's world that does not depend on the job: pools, offers, egress cache."""

    def __init__(
        self,
        *,
        nodes: Iterable[NodeIn],
        offers: Iterable[OfferIn],
        datasets: Mapping[int, DatasetIn],
        network: Network,
    ):
        self.datasets = datasets
        self.network = network
        by_key: dict[tuple, Pool] = {}
        for node in sorted(nodes, key=lambda n: n.id):
            if node.free_gpus <= 0:
                continue
            key = (node.location, node.provider_kind, node.region, node.gpu_model, node.gpu_memory_mib)
            key += (node.usd_per_gpu_h, node.spot)
            pool = by_key.get(key)
            if pool is None:
                pool = by_key[key] = Pool(
                    index=len(by_key),
                    location=node.location,
                    provider_kind=node.provider_kind,
                    region=node.region,
                    gpu_model=node.gpu_model,
                    gpu_memory_mib=node.gpu_memory_mib,
                    usd_per_gpu_h=node.usd_per_gpu_h,
                    usd_per_gpu_h_f=float(node.usd_per_gpu_h),
                    spot=node.spot,
                )
            pool.nodes.append(node)
            pool.max_free = max(pool.max_free, node.free_gpus)
        self.pools: list[Pool] = list(by_key.values())
        self.offers: list[OfferIn] = sorted(
            offers,
            key=lambda o: (o.location, o.instance_type, o.spot, o.gpu_model, o.gpu_count, o.usd_per_h),
        )
        self.pools_by_model: dict[str, list[int]] = {}
        for pool in self.pools:
            self.pools_by_model.setdefault(pool.gpu_model, []).append(pool.index)
        self.offers_by_model: dict[tuple[str | None, bool], list[int]] = {}  # (model or None, spot allowed)
        for i, offer in enumerate(self.offers):
            for model in (offer.gpu_model, None):
                self.offers_by_model.setdefault((model, True), []).append(i)
                if not offer.spot:
                    self.offers_by_model.setdefault((model, False), []).append(i)
        self.offer_usd_f = [float(o.usd_per_h) for o in self.offers]
        self.node_names = {node.id: node.name for pool in self.pools for node in pool.nodes}
        self._moves: dict[tuple[int, str], tuple[int, float, Move]] = {}
        self._unpriceable: dict[tuple[int, str], MoveUnpriceable] = {}  # (dataset, location) the network refused
        self.unpriced: dict[int, str] = {}  # job id -> why a candidate of it was dropped (a move had no price)
        self.targets: dict[tuple, tuple] = {}  # solve.candidate_build's cache of per-target label and price
        self._targets: dict[tuple, list[tuple]] = {}  # feasible pools and offers per set of job constraints

    def move(self, dataset_id: int, location: str) -> tuple[int, float, Move]:
        """(micro-dollars, seconds, Move) for bringing one dataset to ``location`` (computed once per pair);
        raises MoveUnpriceable when the network cannot price it."""
        key = (dataset_id, location)
        cached = self._moves.get(key)
        if cached is None:
            if key in self._unpriceable:
                raise self._unpriceable[key]
            ds = self.datasets[dataset_id]
            try:
                usd = Decimal(self.network.egress_usd(ds.location, location, ds.size_bytes))
            except MoveUnpriceable as exc:
                self._unpriceable[key] = exc
                raise
            seconds = float(self.network.transfer_s(ds.location, location, ds.size_bytes))
            move = Move(ds.id, ds.location, location, ds.size_bytes, usd, seconds)
            cached = self._moves[key] = (round(usd * MICRO), seconds, move)
        return cached

    def _egress(self, job: JobIn, location: str, memo: dict) -> tuple[int, float, tuple[Move, ...] | None]:
        """(micro-dollars, seconds, moves) of the job's data to ``location``; moves None when unpriceable."""
        found = memo.get(location)
        if found is None:
            micro, seconds, moves = 0, 0.0, []
            for ds_id in job.dataset_ids:
                if self.datasets[ds_id].location != location:
                    try:
                        m, s, move = self.move(ds_id, location)
                    except MoveUnpriceable as exc:
                        self.unpriced[job.id] = str(exc)
                        found = memo[location] = (0, 0.0, None)
                        return found
                    micro += m
                    seconds += s
                    moves.append(move)
            found = memo[location] = (micro, seconds, tuple(moves))
        return found

    def options(self, job: JobIn, *, keep: int | None = None) -> list[Option]:
        """Every feasible place for ``job`` in the batch's starting state, best first.

        With ``keep``, only the best ``keep`` are returned, plus any node option up to the cheapest offer
        (the solver needs those; a node dearer than an unlimited offer is never worth its capacity).
        """
        signature = (job.gpu_model, job.min_gpu_memory_mib, job.gpu_count, job.spot_allowed)
        signature += (job.allowed_providers, job.allowed_regions, job.max_usd_per_h, job.use_nodes)
        targets = self._targets.get(signature)
        if targets is None:
            targets = self._targets[signature] = self._targets_for(job)
        hours = float(job.expected_hours)
        if job.dataset_ids:
            memo: dict[str, tuple[int, float, tuple[Move, ...]]] = {}
            rows = []  # Option fields as plain tuples: cheaper to build and sort
            for micro_per_h, kind, location, tie, ref, count in targets:
                egress, seconds, moves = memo.get(location) or self._egress(job, location, memo)
                if moves is None:
                    continue  # a move there cannot be priced: not a candidate for this job
                rows.append((round(hours * micro_per_h) + egress, seconds, kind, location, tie, ref, count, moves))
        else:
            rows = [(round(hours * t[0]), 0.0, *t[1:], ()) for t in targets]
        rows.sort()  # the tie field is unique per kind, so the moves tuples are never compared
        if keep is not None and len(rows) > keep:
            end = keep
            if all(row[2] != OFFER_KIND for row in rows[:keep]):
                while end < len(rows) and rows[end - 1][2] != OFFER_KIND:
                    end += 1
            del rows[end:]
        new = tuple.__new__
        return [new(Option, row) for row in rows]

    def _targets_for(self, job: JobIn) -> list[tuple]:
        """Pools and offers that meet the job's constraints (shared by jobs with the same constraints):
        (micro-dollars per hour, kind, location, tie, index, instance count)."""
        gpus, cap = job.gpu_count, job.max_usd_per_h
        targets = []
        for p in self._pool_indexes(job) if job.use_nodes else ():
            pool = self.pools[p]
            if pool.max_free < gpus or not self._allowed(job, pool.provider_kind, pool.region):
                continue
            if pool.spot and not job.spot_allowed:
                continue
            if cap is not None and pool.usd_per_gpu_h * gpus > cap:
                continue
            targets.append((pool.usd_per_gpu_h_f * gpus * MICRO, NODE_KIND, pool.location, pool.nodes[0].id, p, 1))
        for i in self._offer_indexes(job):
            offer = self.offers[i]
            if not self._allowed(job, offer.provider_kind, offer.region):
                continue
            count = -(-gpus // offer.gpu_count)
            if cap is not None and offer.usd_per_h * count > cap:
                continue
            targets.append((self.offer_usd_f[i] * count * MICRO, OFFER_KIND, offer.location, i, i, count))
        return targets

    @staticmethod
    def _allowed(job: JobIn, provider_kind: str, region: str) -> bool:
        return (not job.allowed_providers or provider_kind in job.allowed_providers) and (
            not job.allowed_regions or region in job.allowed_regions
        )

    @staticmethod
    def _gpu_ok(job: JobIn, gpu_model: str, memory_mib: int) -> bool:
        if job.gpu_model and gpu_model != job.gpu_model:
            return False
        return job.min_gpu_memory_mib is None or memory_mib >= job.min_gpu_memory_mib

    def _pool_indexes(self, job: JobIn) -> list[int]:
        indexes = self.pools_by_model.get(job.gpu_model, []) if job.gpu_model else range(len(self.pools))
        mem = job.min_gpu_memory_mib
        return [p for p in indexes if mem is None or self.pools[p].gpu_memory_mib >= mem]

    def _offer_indexes(self, job: JobIn, *, spot: bool | None = None) -> list[int]:
        spot = job.spot_allowed if spot is None else spot
        indexes = self.offers_by_model.get((job.gpu_model or None, spot), [])
        mem = job.min_gpu_memory_mib
        return [i for i in indexes if mem is None or self.offers[i].gpu_memory_mib >= mem]

    def unplaceable_reason(self, job: JobIn) -> str:
        """Why ``job`` has no candidate at all, in words (checked stage by stage: GPU, place, spot, size, price;
        or every candidate needed a data move that cannot be priced)."""
        if job.id in self.unpriced:
            return f"cannot price moving its data to any place that fits: {self.unpriced[job.id]}"
        what = _gpu_text(job)
        pools = [self.pools[p] for p in self._pool_indexes(job)]
        offers = [self.offers[i] for i in self._offer_indexes(job, spot=True)]
        if not pools and not offers:
            return f"no {what} is offered in the catalogue or free in the fleet"
        where = _where_text(job)
        pools = [p for p in pools if self._allowed(job, p.provider_kind, p.region)]
        offers = [o for o in offers if self._allowed(job, o.provider_kind, o.region)]
        if not pools and not offers:
            return f"no {what} {where}"
        if not job.spot_allowed and all(o.spot for o in offers) and all(p.spot for p in pools):
            return f"only spot capacity of {what} {where}, and the job does not allow spot"
        offers = [o for o in offers if job.spot_allowed or not o.spot]
        pools = [p for p in pools if job.spot_allowed or not p.spot]
        allowed_pools = pools
        pools = [p for p in pools if p.max_free >= job.gpu_count]
        if not pools and not offers:
            most = max((p.max_free for p in allowed_pools), default=0)
            return (
                f"needs {job.gpu_count} {what} GPUs on one node and no cloud offer {where}; "
                f"the most free on one allowed node is {most}"
            )
        if job.max_usd_per_h is None:
            return f"no {what} fits the job {where}"
        prices = [p.usd_per_gpu_h * job.gpu_count for p in pools]
        prices += [o.usd_per_h * -(-job.gpu_count // o.gpu_count) for o in offers]
        cheapest = min(prices)
        return (
            f"no {job.gpu_count}× {what} under {usd_text(job.max_usd_per_h)}/h {where}; "
            f"the cheapest is {usd_text(cheapest)}/h"
        )


def _gpu_text(job: JobIn) -> str:
    if job.gpu_model and job.min_gpu_memory_mib:
        return f"{job.gpu_model} with ≥ {job.min_gpu_memory_mib} MiB"
    if job.gpu_model:
        return job.gpu_model
    if job.min_gpu_memory_mib:
        return f"GPU with ≥ {job.min_gpu_memory_mib} MiB"
    return "GPU"


def _where_text(job: JobIn) -> str:
    parts = []
    if job.allowed_providers:
        parts.append(f"providers ({', '.join(sorted(job.allowed_providers))})")
    if job.allowed_regions:
        parts.append(f"regions ({', '.join(sorted(job.allowed_regions))})")
    return f"in the allowed {' and '.join(parts)}" if parts else "anywhere"


def provider_label(provider_kind: str) -> str:
    """``onprem`` → ``on-prem``; cloud kinds unchanged."""
    return PROVIDER_LABELS.get(provider_kind, provider_kind)
