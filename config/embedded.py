"""Zero-setup defaults: an embedded PostgreSQL (pgserver) and a filesystem Celery broker.

Used only when ``DATABASE_URL`` / ``CELERY_BROKER_URL`` are not set, so a laptop runs the same PostgreSQL
engine as production with nothing installed. The server keeps running after the process that started it
exits (``cleanup_mode=None``) so web, worker and beat share one instance; ``manage.py embedded_db stop``
stops it.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_DB_NAME = "fleetdeck"


def embedded_database_url(pgdata: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL in ``pgdata`` and return a URL for its ``fleetdeck`` db."""
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp: fine here.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: production never loads it

    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    # EMBEDDED_DB_NAME is a constant, not input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DB_NAME}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DB_NAME};")
    # pgserver's URI is postgresql://postgres:@/postgres?host=<socket dir>; point it at our database.
    return server.get_uri(EMBEDDED_DB_NAME)


def stop_embedded_database(pgdata: Path, *, timeout_s: float = 30.0) -> bool:
    """Stop the embedded PostgreSQL in ``pgdata`` if it runs; return whether one was stopped.

    Sends SIGINT, PostgreSQL's documented "fast shutdown", to the postmaster named in ``postmaster.pid``.
    """
    import os
    import signal
    import time

    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not pidfile.exists()


def filesystem_broker_options(folder: Path) -> dict:
    """kombu ``filesystem://`` transport options with every queue under ``folder``."""
    queue_dir = folder / "queue"
    processed_dir = folder / "processed"
    control_dir = folder / "control"
    for d in (queue_dir, processed_dir, control_dir):
        d.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "processed_folder": str(processed_dir),
        "control_folder": str(control_dir),
        "store_processed": False,
    }


if __name__ == "__main__":
    # ``python -m config.embedded stop``: stop the embedded PostgreSQL without importing Django settings
    # (which would start it first).
    import os
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m config.embedded stop")
    base = Path(__file__).resolve().parent.parent
    data_dir = Path(os.environ.get("FLEETDECK_DATA_DIR") or base / ".fleetdeck").resolve()
    stopped = stop_embedded_database(data_dir / "pgdata")
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
