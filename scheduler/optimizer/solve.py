"""Placing a batch of jobs: exact (MILP, HiGHS via scipy), fast (regret insertion + local search), or greedy
(each job its cheapest option in submission order: the baseline).

Priority semantics (lexicographic by tier): jobs are solved one priority tier at a time, highest first, and a
tier's placements are fixed before the next tier sees the remaining capacity. So a lower-priority job can never
take GPUs a higher-priority job would have used, nor leave it unplaced, nor push it to a dearer option. Within
one tier the method minimises first the number of unplaced jobs, then the tier's total cost (compute + egress)
jointly. (Among several equally cheap answers for a tier, none is picked to suit the tiers below.)

Only existing nodes have limited capacity; offers are unlimited, so a job's cheapest offer bounds what it can
ever pay, and a node dearer than that offer is never considered for it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from decimal import Decimal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from scheduler.optimizer.candidates import MICRO, NODE_KIND, OFFER_KIND, CapacityState, Context, Option, provider_label
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
IMPROVE_PASSES = 3
IMPROVE_CHECKS_PER_JOB, IMPROVE_CHECKS_MIN = 2, 5_000  # local search budget: evictions simulated
EJECT_CHECKS_MAX = 16  # evictions simulated per (job, cheaper pool)
EJECT_NODES_MAX = 64  # nodes looked at per (job, cheaper pool)
REGRET_UNPLACED = 10**18  # losing the only option leaves the job unplaced: worse than any cost
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
        assign = {"milp": _assign_milp, "fast": _assign_fast, "greedy": _assign_greedy}[tier_method]
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


def _best_two(job: JobIn, found: list[Option], state: CapacityState) -> tuple[Option | None, int | None, int]:
    """The best option still available (and its node), and the regret: what losing it would cost more."""
    best = node = None
    gpus, fit = job.gpu_count, state.fit
    for option in found:
        if option.kind == NODE_KIND:
            where = fit(option.ref, gpus)
            if where is None:
                continue
        elif best is None:
            return option, None, 0  # an offer never runs out: nothing to lose by waiting
        else:
            return best, node, option.micro - best.micro
        if best is None:
            best, node = option, where
        else:
            return best, node, option.micro - best.micro
    return best, node, REGRET_UNPLACED


def _assign_regret(
    ctx: Context, state: CapacityState, tier: list[JobIn], useful: dict, *, per_gpu: bool = False
) -> dict:
    """Repeatedly place the job that would lose most by waiting (largest regret, or regret per GPU it takes),
    lazily updated."""
    chosen = {}
    heap = []
    for job in tier:
        best, node, regret = _best_two(job, useful[job.id], state)
        if best is not None and best.kind == OFFER_KIND:
            chosen[job.id] = (best, None)
        elif best is not None:
            heap.append((-(regret / job.gpu_count if per_gpu else regret), job.order, job.id, job))
    heapq.heapify(heap)
    while heap:
        _, order, job_id, job = heapq.heappop(heap)
        best, node, regret = _best_two(job, useful[job_id], state)
        if best is None:
            continue
        if best.kind == OFFER_KIND:
            chosen[job_id] = (best, None)
            continue
        key = (-(regret / job.gpu_count if per_gpu else regret), order, job_id, job)
        if heap and key[:3] > heap[0][:3]:
            heapq.heappush(heap, key)
            continue
        state.take(node, job.gpu_count)
        chosen[job_id] = (best, node)
    return chosen


def _assign_fast(ctx: Context, state: CapacityState, tier: list[JobIn], useful: dict) -> dict:
    """Fast method: the better of two regret orders (absolute, per GPU), then a bounded local search that
    moves a job into capacity freed by sending one occupant to its next-best option when that saves money."""
    best = None
    for per_gpu in (False, True):
        trial = state.copy()
        chosen = _assign_regret(ctx, trial, tier, useful, per_gpu=per_gpu)
        score = (len(tier) - len(chosen), sum(option.micro for option, _ in chosen.values()))
        if best is None or score < best[0]:
            best = (score, trial, chosen)
    _, trial, chosen = best
    _LocalSearch(tier, useful, trial, chosen).run()
    state.restore(trial)
    return chosen


class _LocalSearch:
    """Bounded local search over one tier's assignment, two moves, each applied only when it saves money:

    - eject: a job B not on its cheapest option takes a node of a cheaper pool after one of the node's jobs,
      A, moves to its best remaining option;
    - refill: a node's job A moves to its best remaining option and the freed GPUs go to the jobs that save
      most per GPU there (one large job against several small ones).

    Unplaced jobs count as infinitely expensive, so either move places them when it can.
    """

    def __init__(self, tier: list[JobIn], useful: dict, state: CapacityState, chosen: dict):
        self.tier, self.state, self.chosen = tier, state, chosen
        self.by_id = {job.id: job for job in tier}
        self.useful = useful
        self.on_node: dict[int, list[int]] = {}
        self.pool_nodes: dict[int, dict[int, None]] = {}  # insertion-ordered sets: deterministic, no sorting
        for job_id, (_, node) in chosen.items():
            if node is not None:
                self._occupy(job_id, node)
        self.wants: dict[int, list[tuple[int, Option]]] = {}  # pool -> jobs with an option there
        for job in tier:
            for option in self.useful[job.id]:
                if option.kind == NODE_KIND:
                    self.wants.setdefault(option.ref, []).append((job.id, option))
        self.budget = IMPROVE_CHECKS_PER_JOB * len(tier) + IMPROVE_CHECKS_MIN

    def run(self) -> None:
        """Apply improving moves until none is found, the passes run out, or the budget is spent."""
        for _ in range(IMPROVE_PASSES):
            improved = self._eject_pass()
            improved = self._refill_pass() or improved
            if not improved or self.budget <= 0:
                return

    def cost(self, job_id: int) -> int:
        """What the job's current choice costs (micro-dollars); unplaced is worse than anything."""
        pick = self.chosen.get(job_id)
        return REGRET_UNPLACED if pick is None else pick[0].micro

    def _occupy(self, job_id: int, node: int) -> None:
        self.on_node.setdefault(node, []).append(job_id)
        self.pool_nodes.setdefault(self.state.pool_of[node], {})[node] = None

    def move(self, job_id: int, option: Option | None, node: int | None) -> None:
        """Put a job on ``option`` (``node`` for a pool); ``option`` None leaves it unplaced."""
        gpus = self.by_id[job_id].gpu_count
        old = self.chosen.pop(job_id, None)
        if old is not None and old[1] is not None:
            self.state.release(old[1], gpus)
            self.on_node[old[1]].remove(job_id)
        if option is None:
            return
        if node is not None:
            self.state.take(node, gpus)
            self._occupy(job_id, node)
        self.chosen[job_id] = (option, node)

    def _replace(self, a_id: int) -> None:
        """Send job A to its best option still available (or leave it unplaced)."""
        best, node, _ = _best_two(self.by_id[a_id], self.useful[a_id], self.state)
        self.move(a_id, best, node)

    def _eject_pass(self) -> bool:
        improved = False
        for b in self.tier:
            for option in self.useful[b.id]:
                if self.budget <= 0:
                    return improved
                current = self.cost(b.id)
                if option.micro >= current or option.kind != NODE_KIND:
                    break
                fit = self.state.fit(option.ref, b.gpu_count)
                if fit is not None:  # capacity freed by an earlier move
                    self.move(b.id, option, fit)
                    improved = True
                    continue
                found = self._best_ejection(b, option, current)
                if found is not None:
                    _, node, evicted = found
                    for a_id in evicted:
                        self.move(a_id, None, None)
                    self.move(b.id, option, node)
                    for a_id in evicted:
                        self._replace(a_id)
                    improved = True
        return improved

    def _best_ejection(self, b: JobIn, option: Option, current: int) -> tuple | None:
        """The best eviction (gain, node, evicted job ids) that lets ``b`` onto a node of ``option``'s pool:
        one of the node's jobs, or all of them when no single one frees enough GPUs."""
        best, checks = None, 0
        for visits, node in enumerate(self.pool_nodes.get(option.ref, ()), 1):
            if visits > EJECT_NODES_MAX:
                break
            free, jobs = self.state.free[node], self.on_node[node]
            singles = [[a_id] for a_id in jobs if free + self.by_id[a_id].gpu_count >= b.gpu_count]
            if not singles and len(jobs) > 1 and free + sum(self.by_id[a].gpu_count for a in jobs) >= b.gpu_count:
                singles = [list(jobs)]
            for evicted in singles:
                checks += 1
                self.budget -= len(evicted)
                if checks > EJECT_CHECKS_MAX:
                    return best
                gain = (current - option.micro) - self._eviction_loss(b, node, evicted)
                if gain > 0 and (best is None or gain > best[0]):
                    best = (gain, node, evicted)
        return best

    def _eviction_loss(self, b: JobIn, node: int, evicted: list[int]) -> int:
        """Simulate: the evicted jobs leave ``node``, B arrives (freeing its old node), the evicted jobs take
        their best remaining options in turn; what they pay more. The state is restored afterwards."""
        state = self.state
        old_b = self.chosen.get(b.id)
        b_old_node = None if old_b is None else old_b[1]
        for a_id in evicted:
            state.release(node, self.by_id[a_id].gpu_count)
        state.take(node, b.gpu_count)
        if b_old_node is not None:
            state.release(b_old_node, b.gpu_count)
        loss, taken = 0, []
        for a_id in evicted:
            a = self.by_id[a_id]
            a_best, a_node, _ = _best_two(a, self.useful[a_id], state)
            if a_best is None:
                loss = REGRET_UNPLACED
                break
            loss += a_best.micro - self.cost(a_id)
            if a_node is not None:
                state.take(a_node, a.gpu_count)
                taken.append((a_node, a.gpu_count))
        for a_node, gpus in taken:
            state.release(a_node, gpus)
        if b_old_node is not None:
            state.take(b_old_node, b.gpu_count)
        state.release(node, b.gpu_count)
        for a_id in evicted:
            state.take(node, self.by_id[a_id].gpu_count)
        return loss

    def _gains(self, pool: int) -> list[tuple]:
        """Jobs that would save by moving onto ``pool``: (saving per GPU, job id, option, saving), best first."""
        gains = []
        for job_id, option in self.wants.get(pool, ()):
            saving = self.cost(job_id) - option.micro
            if saving > 0:
                gains.append((saving / self.by_id[job_id].gpu_count, job_id, option, saving))
        self.budget -= len(self.wants.get(pool, ())) // 8 + 1
        gains.sort(key=lambda g: (-g[0], g[1]))
        return gains

    def _refill_pass(self) -> bool:
        improved, state, cache = False, self.state, {}
        for node in list(self.on_node):
            pool = state.pool_of[node]
            for a_id in list(self.on_node[node]):
                if self.budget <= 0:
                    return improved
                if pool not in cache:
                    cache[pool] = self._gains(pool)
                a = self.by_id[a_id]
                room = state.free[node] + a.gpu_count
                fills = []
                for _, b_id, option, saving in cache[pool]:
                    gpus = self.by_id[b_id].gpu_count
                    if b_id != a_id and gpus <= room and self.chosen.get(b_id, (None, None))[1] != node:
                        fills.append((b_id, option, saving))
                        room -= gpus
                if not fills:
                    continue
                self.budget -= len(fills) + 1
                # Simulate: A leaves, the fills arrive (freeing their old nodes), A takes its best remaining.
                state.release(node, a.gpu_count)
                olds = [(b_id, self.chosen.get(b_id, (None, None))[1]) for b_id, _, _ in fills]
                for b_id, old in olds:
                    state.take(node, self.by_id[b_id].gpu_count)
                    if old is not None:
                        state.release(old, self.by_id[b_id].gpu_count)
                a_best, _, _ = _best_two(a, self.useful[a_id], state)
                for b_id, old in olds:
                    if old is not None:
                        state.take(old, self.by_id[b_id].gpu_count)
                    state.release(node, self.by_id[b_id].gpu_count)
                state.take(node, a.gpu_count)
                a_after = REGRET_UNPLACED if a_best is None else a_best.micro
                gain = sum(saving for _, _, saving in fills) - (a_after - self.cost(a_id))
                if gain <= 0:
                    continue
                self.move(a_id, None, None)
                for b_id, option, _ in fills:
                    self.move(b_id, option, node)
                self._replace(a_id)
                improved = True
                cache.clear()
                break  # this node's jobs changed
        return improved


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
        return _assign_fast(ctx, state, tier, useful)
    chosen = {}
    for col, (job, option, node) in enumerate(variables):
        if res.x[col] > 0.5:
            if node is not None:
                state.take(node, job.gpu_count)
            chosen[job.id] = (option, node)
    return chosen
