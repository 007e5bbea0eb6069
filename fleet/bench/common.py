"""Shared benchmark plumbing: a throwaway database, timing, percentiles."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator

from django.db import connection

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


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds ``fn`` took, and what it returned."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


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
