"""Placing a batch of jobs: exact (MILP, HiGHS via scipy), fast (regret insertion + local search), or greedy
(each job its cheapest option in submission order: the baseline). The fast method is in ``fast.py``.

Priority semantics (lexicographic by tier): jobs are solved one priority tier at a time, highest first, and a
tier's placements are fixed before the next tier sees the remaining capacity. So a lower-priority job can never
take GPUs a higher-priority job would have used, nor leave it unplaced, nor push it to a dearer option. Within
one tier the method minimises first the number of unplaced jobs, then the tier's total cost (compute + egress)
jointly. (Among several equally cheap answers for a tier, none is picked to suit the tiers below.)

Only existing nodes have limited capacity; offers are unlimited, so a job's cheapest offer bounds what it can
ever pay, and a node dearer than that offer is never considered for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from scheduler.optimizer.candidates import MICRO, NODE_KIND, OFFER_KIND, CapacityState, Context, Option, provider_label
from scheduler.optimizer.fast import assign_fast
from scheduler.optimizer.model import (
    ALTERNATIVES_MAX,
    BatchResult,
    Candidate,
    DatasetIn,
    Decision,
    JobIn,
    Network,
    NodeIn,
    OfferIn,
)

METHODS = ("auto", "milp", "fast", "greedy")
MILP_MAX_VARIABLES = 5_000  # "auto" solves exactly up to this many (job, node) pairs per tier (≈0.5 s)
MILP_TIME_LIMIT_S = 10.0  # past it, the best solution found so far (or the fast method)
MICRO_USD = Decimal("0.000001")  # reported money is exact to the micro-dollar, like the Placement columns
ZERO_USD = Decimal("0.000000")
TAKEN_REASON = (
    "the free {what}GPUs that fit ({gpus} on one node) went to other jobs of this batch (higher priority first), "
    "and no cloud offer fits"
)


def candidates_for(
    job: JobIn,
    *,
    nodes: Iterable[NodeIn],
    offers: Iterable[OfferIn],
    datasets: Mapping[int, DatasetIn],
    network: Network,
) -> list[Candidate]:
    """Every feasible candidate for ``job`` alone, cheapest first (equivalent nodes shown once, lowest id);
    none when an input dataset is unknown (its move cannot be priced)."""
    if any(ds_id not in datasets for ds_id in job.dataset_ids):
        return []
    ctx = Context(nodes=nodes, offers=offers, datasets=datasets, network=network)
    state = CapacityState(ctx.pools)
    return [
        candidate_build(ctx, job, option, None if option.pool is None else state.fit(option.pool, job.gpu_count))
        for option in ctx.options(job)
    ]


def place_batch(
    jobs: Iterable[JobIn],
    *,
    nodes: Iterable[NodeIn],
    offers: Iterable[OfferIn],
    datasets: Mapping[int, DatasetIn],
    network: Network,
    method: str = "auto",
) -> BatchResult:
    """Place a batch of jobs together: highest priority tier first, each tier's total cost minimised."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    ctx = Context(nodes=nodes, offers=offers, datasets=datasets, network=network)
    state = CapacityState(ctx.pools)
    first_fit = {}  # representative node per (pool, gpus) in the starting state, for alternatives
    result = BatchResult()
    options: dict[int, list[Option]] = {}  # per job, ranked, for the alternatives
    useful: dict[int, list[Option]] = {}  # per job, the options the solvers consider
    tiers: dict[int, list[JobIn]] = {}
    for job in sorted(jobs, key=lambda j: (-j.priority, j.order, j.id)):
        unknown = [ds_id for ds_id in job.dataset_ids if ds_id not in datasets]
        if unknown:
            result.unplaced[job.id] = (
                f"input dataset(s) {', '.join(map(str, unknown))} not found: cannot price moving them"
            )
            continue
        found = ctx.options(job, keep=ALTERNATIVES_MAX)
        if not found:
            result.unplaced[job.id] = ctx.unplaceable_reason(job)
            continue
        options[job.id] = found
        useful[job.id] = _useful(found)
        tiers.setdefault(job.priority, []).append(job)
        for option in found[:ALTERNATIVES_MAX]:
            if option.kind == NODE_KIND and (option.ref, job.gpu_count) not in first_fit:
                first_fit[option.ref, job.gpu_count] = state.fit(option.ref, job.gpu_count)

    chosen: dict[int, tuple[Option, int | None]] = {}
    for priority in sorted(tiers, reverse=True):
        tier = tiers[priority]
        tier_method = method
        if method == "auto":
            tier_method = "milp" if _milp_size(ctx, tier, useful) <= MILP_MAX_VARIABLES else "fast"
        assign = {"milp": _assign_milp, "fast": assign_fast, "greedy": _assign_greedy}[tier_method]
        chosen.update(assign(ctx, state, tier, useful))

    for tier_priority in sorted(tiers, reverse=True):
        for job in tiers[tier_priority]:
            pick = chosen.get(job.id)
            if pick is None:
                result.unplaced[job.id] = TAKEN_REASON.format(
                    what=f"{job.gpu_model} " if job.gpu_model else "", gpus=job.gpu_count
                )
                continue
            option, node_id = pick
            winner = candidate_build(ctx, job, option, node_id)
            alternatives = [winner]
            for other in options[job.id]:
                if len(alternatives) >= ALTERNATIVES_MAX:
                    break
                if other is not option:
                    node = first_fit.get((other.ref, job.gpu_count)) if other.kind == NODE_KIND else None
                    alternatives.append(candidate_build(ctx, job, other, node))
            result.decisions[job.id] = Decision(job_id=job.id, chosen=winner, alternatives=alternatives)
    return result


def candidate_build(ctx: Context, job: JobIn, option: Option, node_id: int | None) -> Candidate:
    """The caller-facing candidate for ``option``, its money figures exact in ``Decimal`` (to the micro-dollar)."""
    target_key = (option.kind, option.ref, node_id, job.gpu_count)
    target = ctx.targets.get(target_key)
    if target is None:
        target = ctx.targets[target_key] = _target(ctx, job, option, node_id)
    kind, offer, location, gpus, usd_per_h, label = target
    egress, seconds = ZERO_USD, 0.0
    for move in option.moves:
        egress += move.usd
        seconds += move.seconds
    compute = (job.expected_hours * usd_per_h).quantize(MICRO_USD)
    egress = egress.quantize(MICRO_USD)
    return Candidate(
        kind=kind,
        node_id=node_id if offer is None else None,
        offer=offer,
        location=location,
        gpus=gpus,
        instance_count=option.instance_count,
        usd_per_h=usd_per_h,
        compute_usd=compute,
        egress_usd=egress,
        total_usd=compute + egress,
        transfer_s=seconds,
        moves=list(option.moves),
        label=label,
    )


def _target(ctx: Context, job: JobIn, option: Option, node_id: int | None) -> tuple:
    """The parts of a candidate that depend only on where it is and how many GPUs: shared by many jobs."""
    if option.kind == NODE_KIND:
        pool = ctx.pools[option.ref]
        label = f"{provider_label(pool.provider_kind)} {pool.region} {ctx.node_names[node_id]}"
        label += " (spot)" if pool.spot else ""
        return "node", None, pool.location, job.gpu_count, pool.usd_per_gpu_h * job.gpu_count, label
    offer = ctx.offers[option.ref]
    label = f"{provider_label(offer.provider_kind)} {offer.region} {offer.instance_type}"
    label += " (spot)" if offer.spot else ""
    label += f" ×{option.instance_count}" if option.instance_count > 1 else ""
    gpus = option.instance_count * offer.gpu_count
    return "offer", offer, offer.location, gpus, offer.usd_per_h * option.instance_count, label


def _useful(found: list[Option]) -> list[Option]:
    """Options up to the cheapest offer: a dearer node is never worth its capacity, offers being unlimited."""
    for i, option in enumerate(found):
        if option.kind == OFFER_KIND:
            return found[: i + 1]
    return found


def _assign_greedy(ctx: Context, state: CapacityState, tier: list[JobIn], useful: dict) -> dict:
    """The baseline: in submission order, each job takes its cheapest option still free."""
    chosen = {}
    for job in tier:
        for option in useful[job.id]:
            if option.kind == OFFER_KIND:
                chosen[job.id] = (option, None)
                break
            node_id = state.fit(option.ref, job.gpu_count)
            if node_id is not None:
                state.take(node_id, job.gpu_count)
                chosen[job.id] = (option, node_id)
                break
    return chosen


def _milp_size(ctx: Context, tier: list[JobIn], useful: dict) -> int:
    """How many (job, node) variables the exact model of ``tier`` would have (stops counting past the limit)."""
    size = 0
    for job in tier:
        for option in useful[job.id]:
            size += 1 if option.pool is None else len(ctx.pools[option.pool].nodes)
        if size > MILP_MAX_VARIABLES:
            break
    return size


def _assign_milp(ctx: Context, state: CapacityState, tier: list[JobIn], useful: dict) -> dict:
    """Exact: a 0/1 program (HiGHS) over (job, node) and (job, cheapest offer) pairs, fewest unplaced first."""
    variables: list[tuple[JobIn, Option, int | None]] = []
    for job in tier:
        for option in useful[job.id]:
            if option.offer is not None:
                variables.append((job, option, None))
                continue
            for node in ctx.pools[option.pool].nodes:
                if state.free[node.id] >= job.gpu_count:
                    variables.append((job, option, node.id))
    if not variables:
        return {}
    penalty = sum(useful[job.id][-1].micro for job in tier) / MICRO + 1.0  # > any placed total
    n_pairs, n_jobs = len(variables), len(tier)
    job_row = {job.id: i for i, job in enumerate(tier)}
    node_ids = sorted({node for _, _, node in variables if node is not None})
    node_row = {node: n_jobs + i for i, node in enumerate(node_ids)}
    rows, cols, vals = [], [], []
    for col, (job, _, node) in enumerate(variables):
        rows.append(job_row[job.id])
        cols.append(col)
        vals.append(1.0)
        if node is not None:
            rows.append(node_row[node])
            cols.append(col)
            vals.append(float(job.gpu_count))
    for i in range(n_jobs):  # the "unplaced" variable of each job
        rows.append(i)
        cols.append(n_pairs + i)
        vals.append(1.0)
    matrix = coo_array((vals, (rows, cols)), shape=(n_jobs + len(node_ids), n_pairs + n_jobs)).tocsr()
    lower = np.concatenate([np.ones(n_jobs), np.full(len(node_ids), -np.inf)])
    upper = np.concatenate([np.ones(n_jobs), [float(state.free[n]) for n in node_ids]])
    cost = np.array([option.micro / MICRO for _, option, _ in variables] + [penalty] * n_jobs)
    res = milp(
        cost,
        integrality=np.ones(len(cost)),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(matrix, lower, upper),
        options={"time_limit": MILP_TIME_LIMIT_S, "mip_rel_gap": 1e-9},
    )
    if res.x is None:
        # No solution within the time limit: fall back to the fast method rather than fail the batch.
        return assign_fast(ctx, state, tier, useful)
    chosen = {}
    for col, (job, option, node) in enumerate(variables):
        if res.x[col] > 0.5:
            if node is not None:
                state.take(node, job.gpu_count)
            chosen[job.id] = (option, node)
    return chosen
