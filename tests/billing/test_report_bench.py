"""The report benchmark runs at a tiny scale and prints its figures beside the raw-aggregate baseline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench.common import connection_database_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_report_benchmark_prints_build_time_beside_the_raw_query():
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": connection_database_url()}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "report", "--scale", "0.005"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "report"
    assert {"report_build", "report_data_only", "raw_aggregate_query"} <= set(figures)
    assert figures["report_build"]["p95_ms"] >= figures["report_build"]["p50_ms"] > 0
    assert figures["ledger_entries"] == figures["nodes"] * 30 * 24
    assert figures["totals_agree"] is True
