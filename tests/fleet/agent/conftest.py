"""Fixtures for the agent tests: a fake clock and a real agent HTTP server on an ephemeral port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from devtools.fake_nvml import FakeClock, FakeNvml
from fleet.agent.collector import Collector
from fleet.agent.server import Agent, make_server

TOKEN = "test-token-0123456789abcdef0123456789abcdef"


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock(start_s=1000.0)


@pytest.fixture
def serve(clock: FakeClock) -> Iterator[Callable[..., str]]:
    """Start an agent over a FakeNvml on 127.0.0.1:0 in a thread; returns its base URL. Stopped at teardown."""
    servers = []

    def start(nvml: FakeNvml, *, token: str | None = TOKEN, retry_interval_s: float = 0.0) -> str:
        collector = Collector(nvml, hostname="node-a", init_retry_interval_s=retry_interval_s, clock=clock)
        server = make_server(Agent(collector, token=token), "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        servers.append((server, thread, collector))
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    yield start
    for server, thread, collector in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        collector.close()
