"""Run one ``manage.py bench`` command as a user would (a subprocess of the real command) and return its JSON
line: shared by the tests that run each benchmark at a tiny scale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_figures(name: str, scale: str, *, database: bool = True, timeout_s: int = 600) -> dict:
    """``manage.py bench NAME --scale SCALE``'s figures; fails the test with its stderr when it exits non-zero.

    With ``database`` the command gets the test database's URL (it creates and drops ``<database>_bench``
    beside it; call from a test that has the ``db`` fixture); without, it gets none (pure-Python benchmarks)."""
    env = {**os.environ, "DEBUG": "true"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    if database:
        from devtools.bench.common import connection_database_url

        env["DATABASE_URL"] = connection_database_url()
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", name, "--scale", scale],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == name, figures
    return figures
