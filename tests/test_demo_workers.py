"""The demo's workers, started exactly as ``Procfile.demo`` starts them (real processes, the filesystem broker in a
folder of the test's own, the test database), keep serving every queue after their processes are killed."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from config.celery import app
from config.embedded import filesystem_broker_options
from core.models import Heartbeat
from core.tasks import heartbeat
from devtools.bench.common import connection_database_url

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile.demo"
RESEND_S = 10
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def procfile_workers() -> dict[str, str]:
    """The ``worker*`` entries of Procfile.demo: name → the command line honcho runs."""
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip().startswith("worker") and not line.lstrip().startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def queues_of(command: str) -> set[str]:
    """The queues a ``celery worker -Q a,b`` command line consumes."""
    words = shlex.split(command)
    return set(words[words.index("-Q") + 1].split(","))


def celery_processes(pid: int) -> list[psutil.Process]:
    """Every Celery process below ``pid`` (the shell honcho starts, then the supervisor): workers and their pools."""
    return [p for p in psutil.Process(pid).children(recursive=True) if is_celery(p)]


def is_celery(process: psutil.Process) -> bool:
    try:
        return any(Path(arg).name == "celery" for arg in process.cmdline()[:2])
    except psutil.Error:
        return False


def pool_processes(pid: int) -> list[psutil.Process]:
    """The pool processes of the workers below ``pid``: Celery processes whose parent is a Celery process."""
    return [p for p in celery_processes(pid) if is_celery(p.parent())]


@pytest.fixture
def demo_workers(tmp_path):
    """Start every worker line of Procfile.demo the way honcho does (a shell, a session of its own)."""
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        # What `make demo` gives them: DEBUG, the filesystem broker, the venv on PATH; the test database.
        "DEBUG": "true",
        "CELERY_BROKER_URL": "filesystem://",
        "FLEETDECK_DATA_DIR": str(data_dir),
        "DATABASE_URL": connection_database_url(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    started: dict[str, subprocess.Popen] = {}
    logs = []
    for name, command in procfile_workers().items():
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed at teardown
        logs.append(log)
        started[name] = subprocess.Popen(  # noqa: S602 - a Procfile line is a shell line, as honcho runs it
            command, shell=True, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    yield started, data_dir
    for proc in started.values():
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started.values():
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        # Whatever is left of the line's session (a wedged worker ignores SIGTERM's warm shutdown) goes too.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for log in logs:
        log.close()


def heartbeats_send(data_dir: Path, queues: set[str]) -> None:
    """One heartbeat task per queue, through the workers' own filesystem broker folder."""
    options = filesystem_broker_options(data_dir / "broker")
    with app.connection_for_write("filesystem://", transport_options=options) as connection:
        for queue in sorted(queues):
            heartbeat.apply_async(kwargs={"queue": queue}, queue=queue, connection=connection)


def heartbeats_wait(queues: set[str], *, timeout_s: float, tmp_path: Path, data_dir: Path) -> float:
    """Seconds until every queue's heartbeat row exists; fails with the workers' output after ``timeout_s``.

    A queue still silent after ``RESEND_S`` gets its heartbeat again, as beat sends its tasks every cycle: a worker
    killed while it held a message it had fetched takes that message with it (the filesystem transport deletes a
    message's file when a worker fetches it and has nothing to redeliver), so one send proves nothing either way.
    """
    start = last_send = time.monotonic()
    while time.monotonic() - start < timeout_s:
        arrived = set(Heartbeat.objects.filter(name__in=queues).values_list("name", flat=True))
        if queues <= arrived:
            return time.monotonic() - start
        if time.monotonic() - last_send > RESEND_S:
            heartbeats_send(data_dir, queues - arrived)
            last_send = time.monotonic()
        time.sleep(0.2)
    missing = queues - set(Heartbeat.objects.values_list("name", flat=True))
    output = "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(tmp_path.glob("*.log")))
    pytest.fail(f"no heartbeat from {sorted(missing)} after {timeout_s}s; worker output:\n{output}")


def test_procfile_workers_serve_every_queue_and_telemetry_alone():
    workers = {name: queues_of(command) for name, command in procfile_workers().items()}
    served = [queue for queues in workers.values() for queue in queues]
    assert sorted(served) == sorted(settings.FLEETDECK_QUEUES)
    # A stuck cloud call on another queue can never hold a telemetry slot.
    assert {"telemetry"} in workers.values()


@pytest.mark.parametrize(
    "victims",
    [
        pytest.param(pool_processes, id="pool-processes"),  # what wedged the billiard pool's shared lock
        pytest.param(celery_processes, id="workers-and-pools"),  # the workers themselves too
    ],
)
def test_demo_workers_survive_kill_9_of_their_processes(demo_workers, tmp_path, victims):
    started, data_dir = demo_workers
    queues = set(settings.FLEETDECK_QUEUES)
    heartbeats_send(data_dir, queues)
    heartbeats_wait(queues, timeout_s=45, tmp_path=tmp_path, data_dir=data_dir)

    killed = []
    for proc in started.values():
        for process in victims(proc.pid):
            with suppress(psutil.NoSuchProcess):
                process.kill()  # SIGKILL
                killed.append(process.pid)
    assert killed, "the worker lines started no such processes below the one honcho watches"
    Heartbeat.objects.all().delete()

    heartbeats_send(data_dir, queues)
    heartbeats_wait(queues, timeout_s=60, tmp_path=tmp_path, data_dir=data_dir)
    # What honcho watches stayed up: a demo whose worker dies takes every other process down with it.
    assert all(proc.poll() is None for proc in started.values())
