"""Worker processes for the scrape and ingest benchmarks: real forked processes, each with its own database
connection, taking jobs from one queue as Celery workers with prefetch 1 take shard tasks."""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections


@dataclass(frozen=True)
class WorkerFigures:
    """What one worker process did: jobs, their results, busy seconds and its peak RSS (MiB)."""

    jobs: int
    results: list
    busy_s: float
    peak_rss_mib: float
    start_rss_mib: float


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _work(job: Callable, jobs, results) -> None:
    connections.close_all()  # never share the parent's connection: each process opens its own
    start_rss = _rss_mib()
    done, out, busy = 0, [], 0.0
    while (item := jobs.get()) is not None:
        started = time.perf_counter()
        out.append(job(item))
        busy += time.perf_counter() - started
        done += 1
    connections.close_all()
    results.put(WorkerFigures(done, out, busy, _rss_mib(), start_rss))


def run_in_processes(job: Callable, items: list, processes: int) -> tuple[float, list[WorkerFigures]]:
    """Run ``job(item)`` for every item in ``processes`` forked processes; return wall seconds and each's figures.

    The processes are started (and ready) before the clock starts, as running workers would be.
    """
    from fleet.telemetry.fetch import pool_clear

    pool_clear()  # no keep-alive socket may be shared by parent and children
    connections.close_all()
    context = multiprocessing.get_context("fork")
    jobs, results = context.Queue(), context.Queue()
    workers = [context.Process(target=_work, args=(job, jobs, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    for item in items:
        jobs.put(item)
    for _ in workers:
        jobs.put(None)
    figures = [results.get(timeout=600) for _ in workers]
    wall_s = time.perf_counter() - started
    for worker in workers:
        worker.join(timeout=30)
    if any(worker.exitcode != 0 for worker in workers):
        raise RuntimeError(f"a benchmark worker failed: exit codes {[w.exitcode for w in workers]}")
    return wall_s, figures
