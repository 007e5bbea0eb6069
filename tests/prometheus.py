"""The shared real-Prometheus peer fixture: `prometheus(config) -> Peer`, started on 127.0.0.1, stopped at teardown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

PROMETHEUS_BIN = Path(os.environ.get("FLEETDECK_PROMETHEUS_BIN", "/usr/bin/prometheus"))
READY_DEADLINE_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local test peer
        return json.loads(response.read())


@dataclass
class Peer:
    """A running Prometheus: its base URL, the process and helpers over its HTTP API."""

    url: str
    process: subprocess.Popen
    config_path: Path
    log_path: Path
    data_dir: Path = field(repr=False, default=None)

    def api(self, path: str, **params) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = _get_json(f"{self.url}{path}{query}")
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} answered {body!r}")
        return body["data"]

    def query(self, expr: str) -> list:
        """Instant query; returns data.result (a list of {metric, value})."""
        return self.api("/api/v1/query", query=expr)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list:
        return self.api("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def targets(self) -> list:
        """The active scrape targets (each has health, lastError, scrapeUrl, labels…)."""
        return self.api("/api/v1/targets", state="active")["activeTargets"]

    def wait_for(self, predicate, *, timeout: float = 20.0, interval: float = 0.25, what: str = "condition"):
        """Poll predicate() until it returns something truthy; fail with the Prometheus log tail otherwise."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"Prometheus: {what} not met within {timeout}s (last {last!r}); log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the real Prometheus peer is required; .ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture
def prometheus(tmp_path):
    """Factory: prometheus(config: dict, *, extra_args=()) -> Peer; every started process is stopped at teardown."""
    started: list[Peer] = []

    def start(config: dict, *, extra_args=()) -> Peer:
        if not (PROMETHEUS_BIN.is_file() and os.access(PROMETHEUS_BIN, os.X_OK)):
            _missing(f"{PROMETHEUS_BIN} not found: install Debian's prometheus package to run the peer tests")
        root = tmp_path / f"prometheus-{len(started)}"
        data_dir = root / "data"
        data_dir.mkdir(parents=True)
        config_path = root / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        log_path = root / "prometheus.log"
        port = free_port()
        args = [
            str(PROMETHEUS_BIN),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            *extra_args,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root)  # noqa: S603
        peer = Peer(f"http://127.0.0.1:{port}", process, config_path, log_path, data_dir)
        started.append(peer)
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"Prometheus exited with {process.returncode}; log:\n{peer.log_tail()}")
            try:
                with urllib.request.urlopen(f"{peer.url}/-/ready", timeout=1.0) as response:  # noqa: S310
                    if response.status == 200:
                        return peer
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus not ready within {READY_DEADLINE_S}s; log:\n{peer.log_tail()}")
            time.sleep(0.1)

    yield start
    for peer in started:
        if peer.process.poll() is None:
            peer.process.terminate()
            try:
                peer.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                peer.process.kill()
                peer.process.wait(timeout=5)
