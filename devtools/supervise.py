"""A small supervisor for the demo's Celery workers: ``python -m devtools.supervise -- celery -A config worker …``.

The demo's filesystem broker is not asynchronous, so Celery runs the prefork pool in its blocking mode: the pool
processes share one task pipe behind a lock that an idle process holds while it waits. A pool process killed
then (``kill -9``, the OOM killer) never releases it, the processes started in its place wait on it for ever,
and the worker takes messages it never runs: every queue it serves is wedged until someone restarts it.

This runs one command (the worker) and restarts it when it exits or when one of its own child processes (a
pool process) disappears while it runs, which is the only moment the wedge can begin. A restart stops the old
worker with SIGTERM and, after ``--stop-grace`` seconds, SIGKILL (a wedged pool cannot finish a warm shutdown);
its tasks are redelivered (acks_late) or, for periodic ones, sent again by beat. Restarts that follow one another
quickly wait longer each time (up to 30 s), so a worker that cannot start does not spin. SIGTERM or SIGINT
stop the worker and then the supervisor, as ``honcho`` expects of the processes it runs.

A pool process a hard time limit kills also restarts the worker: rare, and the cost is one warm restart.
Production's brokers (Redis, RabbitMQ) use the asynchronous pool, where each process has its own pipe; run
workers there under systemd, Kubernetes or compose, which restart them (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
import time

import psutil

logger = logging.getLogger("fleetdeck.supervise")
MAX_BACKOFF_S = 30.0
# A worker that ran this long before it had to be restarted is healthy: its next restart waits only the minimum.
HEALTHY_RUN_S = 60.0


class Supervisor:
    """Run ``command``; restart it when it exits or loses a child process, until told to stop."""

    def __init__(self, command: list[str], *, check_interval_s: float, stop_grace_s: float, min_backoff_s: float):
        self.command = command
        self.check_interval_s = check_interval_s
        self.stop_grace_s = stop_grace_s
        self.min_backoff_s = min_backoff_s
        self.stopping = False
        self.restarts = 0

    def stop(self, signum: int, _frame) -> None:
        """Signal handler: stop after the current worker has stopped."""
        logger.info("supervisor: %s received, stopping %s", signal.Signals(signum).name, self.command[0])
        self.stopping = True

    def run(self) -> int:
        backoff_s = self.min_backoff_s
        while True:
            started = time.monotonic()
            child = subprocess.Popen(self.command)  # noqa: S603 - the command line given on our own command line
            reason = self.watch(child)
            if not self.stopping:
                backoff_s = self.min_backoff_s if time.monotonic() - started > HEALTHY_RUN_S else backoff_s
                logger.warning("supervisor: %s; restarting it in %.0f s", reason, backoff_s)
            self.terminate(child)
            if self.stopping:
                return 0
            self.restarts += 1
            self.sleep(backoff_s)
            if self.stopping:
                return 0
            backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)

    def watch(self, child: subprocess.Popen) -> str:
        """Wait until ``child`` exits, loses one of its child processes, or we are told to stop; say which."""
        known: set[int] = set()
        while not self.stopping:
            code = child.poll()
            if code is not None:
                return f"worker {child.pid} exited with {code}"
            try:
                current = {p.pid for p in psutil.Process(child.pid).children()}
            except psutil.Error:  # it has just exited: the next poll() says how
                current = known
            gone = known - current
            if gone:
                return f"pool process(es) {sorted(gone)} of worker {child.pid} died; its pool may be wedged"
            known = current
            self.sleep(self.check_interval_s)
        return "stopping"

    def terminate(self, child: subprocess.Popen) -> None:
        """Stop ``child`` (SIGTERM, then SIGKILL after the grace period) and any pool process it leaves behind."""
        try:
            orphans = psutil.Process(child.pid).children(recursive=True)
        except psutil.Error:
            orphans = []
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("supervisor: worker %s did not stop in %.0f s; killing it", child.pid, self.stop_grace_s)
                child.kill()
                child.wait()
        for orphan in orphans:
            with contextlib.suppress(psutil.Error):
                orphan.kill()

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when told to stop."""
        until = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < until:
            time.sleep(min(0.2, until - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.supervise", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check-interval", type=float, default=1.0, help="seconds between checks (default 1)")
    parser.add_argument("--stop-grace", type=float, default=10.0, help="seconds before SIGKILL (default 10)")
    parser.add_argument("--min-backoff", type=float, default=1.0, help="first restart delay in seconds (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to supervise after --")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    supervisor = Supervisor(
        command, check_interval_s=args.check_interval, stop_grace_s=args.stop_grace, min_backoff_s=args.min_backoff
    )
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
