"""Real Celery: a worker (and beat) started as subprocesses against the configured broker write to the test
database. Locally that broker is the filesystem transport; on CI it is the machine's Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule

from core.choices import HeartbeatComponent
from core.models import Heartbeat
from core.selectors import process_status_list
from core.tasks import heartbeat
from devtools.bench.common import connection_database_url

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def celery_process(tmp_path):
    """Start ``celery -A config <args>`` with the test database; stop it (and wait) at teardown."""
    procs = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        env = {**os.environ, "DEBUG": "true", "DATABASE_URL": connection_database_url(), **(extra_env or {})}
        log = open(tmp_path / f"celery-{len(procs)}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))
        return proc

    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for(predicate, *, timeout_s: float, what: str, logs: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    output = "\n".join(p.read_text()[-3000:] for p in sorted(logs.glob("celery-*.log")))
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}; celery output:\n{output}")


def test_worker_runs_a_task_that_writes_to_the_database(celery_process, tmp_path):
    # A queue of its own, so a demo worker on the same broker can never take this message.
    queue = f"roundtrip-{uuid.uuid4().hex[:8]}"
    celery_process(
        "worker",
        "-Q",
        queue,
        "--pool",
        "solo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
    )
    heartbeat.apply_async(kwargs={"queue": queue}, queue=queue)
    wait_for(lambda: Heartbeat.objects.filter(name=queue).exists(), timeout_s=60, what="the task's row", logs=tmp_path)
    row = Heartbeat.objects.get(name=queue)
    assert row.component == HeartbeatComponent.WORKER
    assert row.hostname.startswith("celery@")


def test_beat_and_worker_report_heartbeats_for_every_queue(celery_process, tmp_path):
    # A short interval, set the way an admin would (the schedule lives in the database), keeps the test quick.
    IntervalSchedule.objects.filter(periodictask__task="core.tasks.heartbeat").update(every=2)
    extra = {"HEARTBEAT_INTERVAL_S": "2"}
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        extra["FLEETDECK_DATA_DIR"] = str(tmp_path / "data")  # a broker folder of its own
    celery_process("beat", "--loglevel", "INFO", "--pidfile=", "--schedule", str(tmp_path / "beat"), extra_env=extra)
    celery_process(
        "worker",
        "-Q",
        ",".join(settings.FLEETDECK_QUEUES),
        "--pool",
        "solo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
        extra_env=extra,
    )
    expected = {(HeartbeatComponent.BEAT.value, "")} | {
        (HeartbeatComponent.WORKER.value, q) for q in settings.FLEETDECK_QUEUES
    }
    wait_for(
        lambda: expected <= set(Heartbeat.objects.values_list("component", "name")),
        timeout_s=90,
        what="heartbeats from beat and every queue",
        logs=tmp_path,
    )
    assert not [s.label for s in process_status_list() if s.stale]
