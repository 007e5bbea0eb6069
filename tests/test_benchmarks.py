"""Every benchmark command runs (at a tiny scale) and prints its JSON line with the product figure and the
baseline beside it; the real figures are in docs/benchmarks.md."""

import pytest
from django.db import connection

from tests.bench_run import bench_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.mark.parametrize(
    ("name", "scale", "keys"),
    [
        ("ingest", "0.01", {"product_samples_per_s", "raw_copy_samples_per_s", "orm_bulk_create_samples_per_s"}),
        ("scrape", "0.005", {"poll_s", "fetch_only_s", "poll_nodes_ok"}),
        ("remote-write", "0.02", {"processes_samples_per_s", "one_process_samples_per_s", "raw_copy_rows_per_s"}),
        ("storage", "0.05", {"compacted_bytes_per_sample", "raw_bytes_per_sample", "row_per_minute_bytes_per_sample"}),
        ("dashboard", "0.005", {"overview", "overview_uncached", "node_detail", "healthz_floor"}),
    ],
)
def test_benchmark_command_prints_figures_beside_its_baseline(name, scale, keys):
    figures = bench_figures(name, scale)
    assert keys <= set(figures), figures
    assert connection.vendor == "postgresql"
