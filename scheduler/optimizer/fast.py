"""The fast placement method for one priority tier: regret insertion (two orders), then a bounded local search.

Used for tiers too large to solve exactly and as the fallback when the MILP finds nothing in its time limit
(``solve.py``). Deterministic: insertion-ordered sets, ties broken by submission order.
"""

from __future__ import annotations

import heapq

from scheduler.optimizer.candidates import NODE_KIND, OFFER_KIND, CapacityState, Context, Option
from scheduler.optimizer.model import JobIn

IMPROVE_PASSES = 3
IMPROVE_CHECKS_PER_JOB, IMPROVE_CHECKS_MIN = 2, 5_000  # local search budget: evictions simulated
EJECT_CHECKS_MAX = 16  # evictions simulated per (job, cheaper pool)
EJECT_NODES_MAX = 64  # nodes looked at per (job, cheaper pool)
REGRET_UNPLACED = 10**18  # losing the only option leaves the job unplaced: worse than any cost


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


def assign_fast(ctx: Context, state: CapacityState, tier: list[JobIn], useful: dict) -> dict:
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
