"""A fleet simulator: agent-compatible endpoints for many virtual nodes from one process.

Each virtual node is the real agent code (``fleet.agent.Agent`` over a ``Collector``) reading a fake NVML, so
what the poller sees is byte-for-byte what a node running the agent would serve. Loads follow a daily cycle
per node, some nodes sit idle for hours, a few GPUs raise XID errors or get lost, and some nodes go away for a
while. Everything is derived from the seed and the clock, so a run can be repeated. No Django import here:
``manage.py simulate`` feeds it the fleet from the database.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devtools.fake_nvml import GPU_MODELS, FakeNvml
from fleet.agent.collector import Collector
from fleet.agent.server import Agent, Response

S_PER_DAY = 86_400
PATH_PREFIX = "/nodes/"
# Shares of virtual nodes by behaviour (the rest follow a daily inference-like cycle).
TRAINING_SHARE = 0.35
IDLE_SHARE = 0.12
FLAKY_SHARE = 0.03  # go away for OUTAGE_S out of every OUTAGE_PERIOD_S
OUTAGE_S = 600
OUTAGE_PERIOD_S = 4 * 3600
XID_GPU_SHARE = 0.01  # GPUs that raise an XID error once an hour
LOST_GPU_SHARE = 0.002  # GPUs that are lost for good
DEFAULT_MODEL = "L4"


def _unit(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) from the parts (same parts, same number, every run)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class VirtualNode:
    """One simulated node: its fake NVML, the agent serving it, and how it behaves."""

    name: str
    nvml: FakeNvml
    agent: Agent
    behaviour: str  # training | inference | idle
    phase_s: float
    flaky: bool
    lost_applied: bool = False
    last_xid_hour: int = -1


class FleetSimulator:
    """Many virtual agents behind one router: ``handle('/nodes/<name>/metrics', ...)``."""

    def __init__(
        self,
        *,
        token: str | None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        render_cache_s: float = 0,
        faults: bool = True,
    ) -> None:
        """``render_cache_s`` > 0 serves a node's last answer for that long, and ``faults=False`` turns off
        outages, XID errors and lost GPUs (benchmarks: the poller, not the simulator, is what is measured)."""
        self.token = token
        self.faults = faults
        self.render_cache_s = render_cache_s
        self._cache: dict[tuple[str, str, str | None, str], tuple[float, Response]] = {}
        self.seed = seed
        self.clock = clock
        self.nodes: dict[str, VirtualNode] = {}
        self._lock = threading.Lock()

    def add_node(self, name: str, gpu_models: Sequence[str], uuids: Sequence[str | None] = ()) -> VirtualNode:
        """Add (or replace) a node with GPUs of the given fake-NVML model keys, keeping known UUIDs."""
        models = [GPU_MODELS.get(key) or GPU_MODELS[DEFAULT_MODEL] for key in gpu_models]
        nvml = FakeNvml(models, seed=int(_unit(self.seed, name) * 2**31), noise_pct=3.0)
        for gpu, known in zip(nvml.gpus, uuids, strict=False):
            if known:
                gpu.uuid = known
        roll = _unit(self.seed, name, "behaviour")
        behaviour = (
            "training" if roll < TRAINING_SHARE else "idle" if roll < TRAINING_SHARE + IDLE_SHARE else "inference"
        )
        node = VirtualNode(
            name=name,
            nvml=nvml,
            agent=Agent(Collector(nvml, hostname=name), token=self.token),
            behaviour=behaviour,
            phase_s=_unit(self.seed, name, "phase") * S_PER_DAY,
            flaky=self.faults and _unit(self.seed, name, "flaky") < FLAKY_SHARE,
        )
        with self._lock:
            self.nodes[name] = node
        return node

    def is_down(self, node: VirtualNode, now: float) -> bool:
        """Whether a flaky node is in one of its outages at ``now``."""
        return node.flaky and (now + node.phase_s) % OUTAGE_PERIOD_S < OUTAGE_S

    def utilisation(self, node: VirtualNode, gpu_index: int, now: float) -> float:
        """A GPU's utilisation (%) at ``now``, from its node's behaviour and the time of day."""
        if node.behaviour == "idle":
            return 1.0 if gpu_index % 3 == 0 else 0.0
        day = ((now + node.phase_s) % S_PER_DAY) / S_PER_DAY
        if node.behaviour == "training":
            # Busy around the clock, with a checkpoint/eval dip for one hour in six.
            return 55.0 if (now + node.phase_s) % 21_600 < 3600 else 96.0
        # Inference: follows the day, quiet at night.
        return max(2.0, 15.0 + 70.0 * max(0.0, math.sin(math.pi * (day - 0.25) * 2)) ** 2)

    def update(self, node: VirtualNode, now: float) -> None:
        """Move the node's fake GPUs to their state at ``now`` (load, XID errors, lost GPUs)."""
        for gpu in node.nvml.gpus:
            node.nvml.set_load(gpu.index, util_pct=self.utilisation(node, gpu.index, now))
        if not self.faults:
            return
        hour = int(now // 3600)
        if hour != node.last_xid_hour:
            node.last_xid_hour = hour
            for gpu in node.nvml.gpus:
                if _unit(self.seed, node.name, gpu.index, "xid") < XID_GPU_SHARE:
                    node.nvml.inject_xid(gpu.index, 79 if _unit(self.seed, node.name, hour) < 0.5 else 48)
        if not node.lost_applied and node.agent.collector.driver_version is not None:
            # Only once the agent has read the node: a GPU gets lost while in service, after it was named.
            node.lost_applied = True
            for gpu in node.nvml.gpus:
                if _unit(self.seed, node.name, gpu.index, "lost") < LOST_GPU_SHARE:
                    node.nvml.lose_gpu(gpu.index)

    def handle(self, path: str, *, authorization: str | None = None, accept_encoding: str = "") -> Response:
        """Route ``/nodes/<name>/<agent path>`` to that node's agent."""
        if not path.startswith(PATH_PREFIX):
            return Response(HTTPStatus.NOT_FOUND, b"not found: try /nodes/<name>/metrics\n")
        name, _, rest = path[len(PATH_PREFIX) :].partition("/")
        node = self.nodes.get(name)
        if node is None:
            return Response(HTTPStatus.NOT_FOUND, f"no simulated node {name!r}\n".encode())
        now = self.clock()
        if self.is_down(node, now):
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, b"node is down (simulated outage)\n")
        key = (name, rest, authorization, accept_encoding)
        cached = self._cache.get(key) if self.render_cache_s else None
        if cached is not None and now - cached[0] < self.render_cache_s:
            return cached[1]
        self.update(node, now)
        response = node.agent.handle("/" + rest, authorization=authorization, accept_encoding=accept_encoding)
        if self.render_cache_s:
            self._cache[key] = (now, response)
        return response

    def url(self, base: str, name: str) -> str:
        """The telemetry URL of node ``name`` on a simulator served at ``base`` (http://host:port)."""
        return f"{base.rstrip('/')}{PATH_PREFIX}{name}/metrics"


def make_server(simulator: FleetSimulator, host: str = "127.0.0.1", port: int = 9500) -> ThreadingHTTPServer:
    """A threaded HTTP server in front of the simulator (not started)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            response = simulator.handle(
                self.path,
                authorization=self.headers.get("Authorization"),
                accept_encoding=self.headers.get("Accept-Encoding", ""),
            )
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for key, value in response.headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # many pollers connect at once

    return Server((host, port), Handler)
