"""gunicorn settings for the web process: ``gunicorn config.wsgi --config python:config.gunicorn …``.

Only what /metrics needs across gunicorn's worker processes (docs/metrics.md, "Several processes"); the
command line keeps the bind, worker count and timeouts. Each worker counts its own requests, so
prometheus_client's multiprocess mode is switched on: PROMETHEUS_MULTIPROC_DIR, when unset, becomes a fresh
private folder of this gunicorn master (set before any worker imports prometheus_client), emptied of an earlier
run's files at start, its dead workers' live gauges dropped as they exit, and removed at shutdown if it made it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_made_here: str | None = None

if not os.environ.get(MULTIPROC_ENV):
    _made_here = tempfile.mkdtemp(prefix="fleetdeck-metrics-")
    os.environ[MULTIPROC_ENV] = _made_here


def on_starting(server) -> None:
    """Before the first worker: the folder exists and holds no figures from an earlier run."""
    folder = Path(os.environ[MULTIPROC_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker) -> None:
    """A worker exited: drop its live gauges (its counters and histograms keep counting in the sum)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """gunicorn stops: remove the folder if this config made it."""
    if _made_here:
        shutil.rmtree(_made_here, ignore_errors=True)
