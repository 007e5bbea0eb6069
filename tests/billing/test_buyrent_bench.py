"""The buy-vs-rent benchmark command runs at a tiny scale and prints its figures beside its baseline (the same
sums from the hourly ledger), the answer agreeing with that baseline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench.common import connection_database_url

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_buyrent_benchmark_prints_its_figures_beside_the_hourly_ledger_baseline():
    # The command creates and drops <database>_bench beside the test database.
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": connection_database_url()}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "buyrent", "--scale", "0.002"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "buyrent" and figures["nodes"] == 20 and figures["gpus"] == 160
    # 20 nodes × 30 days × 24 hours of ledger, rolled up; the spend bench's four GPU models, each priced.
    assert figures["ledger_entries"] == 20 * 30 * 24 and figures["ledger_days"] > 0
    assert figures["gpu_models"] == 4
    assert figures["usage_agrees_with_ledger_entries"] is True
    for name in ("api", "page", "service", "baseline_sums_from_ledger_entries", "healthz_floor"):
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p95_ms"], name
    assert figures["target_p95_ms"] == 200
    assert figures["meets_target"] == (max(figures["api"]["p95_ms"], figures["page"]["p95_ms"]) <= 200)
