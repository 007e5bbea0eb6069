"""Shared benchmark plumbing: a throwaway database, timing, percentiles."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.db import connection

from fleet.telemetry.storage import SAMPLE_COLUMNS, Sample, samples_copy_text

BENCH_DB_SUFFIX = "_bench"


@contextlib.contextmanager
def bench_database(*, keep: bool = False) -> Iterator[str]:
    """Create and migrate ``<database>_bench``, point the default connection at it, drop it afterwards."""
    settings_dict = connection.settings_dict
    original = settings_dict["NAME"]
    settings_dict.setdefault("TEST", {})["NAME"] = f"{original}{BENCH_DB_SUFFIX}"
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=keep)
    try:
        yield name
    finally:
        if not keep:
            connection.creation.destroy_test_db(original, verbosity=0)
        settings_dict["TEST"]["NAME"] = None


def raw_copy_timed(*, gpu_ids: list[int], start: datetime, slots: int) -> tuple[float, int]:
    """The raw-COPY baseline: seconds to COPY ``slots`` prepared samples of every GPU (15 s apart from ``start``)
    straight into fleet_gpu_sample (no parsing, no checks), and how many rows that was."""
    copy_text, copy_rows = samples_copy_text(
        Sample(gpu_id, start + timedelta(seconds=15 * slot), 50, 1000, 300.5, 60, 1980)
        for slot in range(slots)
        for gpu_id in gpu_ids
    )

    def raw_copy() -> None:
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY fleet_gpu_sample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN") as copy,
        ):
            copy.write(copy_text)

    copy_s, _ = timed(raw_copy)
    return copy_s, copy_rows


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds ``fn`` took, and what it returned."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def requests_timed(client, urls: list[str], repeat: int) -> list[float]:
    """Seconds of each GET of ``urls`` through a Django test ``client``, ``repeat`` rounds; a non-200 stops it."""
    times = []
    for _ in range(repeat):
        for url in urls:
            seconds, response = timed(lambda url=url: client.get(url))
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.content[:300]!r}")
            times.append(seconds)
    return times


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def emit(figures: dict) -> str:
    """The one JSON line a benchmark prints."""
    return json.dumps(figures, sort_keys=False, default=str)


def connection_database_url() -> str:
    """A DATABASE_URL for the database the default connection uses now (e.g. the bench or test database)."""
    from urllib.parse import quote

    db = connection.settings_dict
    user, password = quote(db["USER"] or ""), quote(db["PASSWORD"] or "")
    auth = f"{user}:{password}@" if password else f"{user}@"
    # dj-database-url puts a socket directory (pgserver's ?host=/path) in OPTIONS rather than HOST.
    host = db["HOST"] or db.get("OPTIONS", {}).get("host", "")
    if host.startswith("/"):
        return f"postgresql://{auth}/{db['NAME']}?host={host}"
    return f"postgresql://{auth}{host or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def bench_fleet(
    *, nodes: int, gpus_per_node: int = 8, telemetry_url: str = "", token_ref: str = "", seed: int = 1
) -> list[tuple[object, list[object]]]:
    """An on-prem fleet of H100 nodes with random (seeded) GPU UUIDs: [(node, [gpu, …]), …].

    ``telemetry_url`` may contain ``{name}``, filled with each node's name.
    """
    import random
    import uuid

    from fleet.choices import Continent, NodeLifecycle, ProviderKind
    from fleet.models import GPU, Node, Provider, Site

    provider = Provider.objects.create(name="bench", kind=ProviderKind.ONPREM)
    site = Site.objects.create(
        provider=provider,
        name="bench-dc",
        region="bench",
        continent=Continent.EUROPE,
        electricity_usd_per_kwh=0.2,
        pue=1.3,
    )
    node_rows = Node.objects.bulk_create(
        Node(
            site=site,
            name=f"bench-{i:05d}",
            lifecycle=NodeLifecycle.OWNED,
            token_ref=token_ref,
            telemetry_url=telemetry_url.format(name=f"bench-{i:05d}"),
        )
        for i in range(nodes)
    )
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data
    gpus = GPU.objects.bulk_create(
        (
            GPU(
                node=node,
                index=i,
                uuid=f"GPU-{uuid.UUID(int=rng.getrandbits(128))}",
                model="NVIDIA H100 80GB HBM3",
                memory_mib=81920,
                power_limit_w=700,
            )
            for node in node_rows
            for i in range(gpus_per_node)
        ),
        batch_size=5000,
    )
    by_node: dict[int, list] = {}
    for gpu in gpus:
        by_node.setdefault(gpu.node_id, []).append(gpu)
    return [(node, by_node[node.pk]) for node in node_rows]
