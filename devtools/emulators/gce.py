"""A local Compute Engine REST API v1 emulator: the calls Fleetdeck's GCP inventory makes, with in-memory state.

Serves ``GET /compute/v1/projects/{project}/aggregated/instances`` (``maxResults``/``pageToken`` pagination,
``items`` keyed by ``zones/<zone>`` with ``NO_RESULTS_ON_PAGE`` warnings, as the real API answers) and
``GET /compute/v1/projects/{project}/zones/{zone}/machineTypes/{name}`` (with ``accelerators`` for the a2, a3
and g2 families), and ``POST /compute/v1/projects/{project}/zones/{zone}/instances`` (``instances.insert``, used
by the scheduler's launcher: the VM is RUNNING at once). Failures (403, 429, 500, …) can be injected per
project, in Google's error JSON shape.

Reach it with the real client: ``client_options={"api_endpoint": emulator.url}`` and ``AnonymousCredentials()``.
From a shell: ``python -m devtools.emulators.gce --port 8085 --seed-demo``. No Django import, so the demo can run it
as its own process.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API_BASE = "https://www.googleapis.com/compute/v1"
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
DEMO_PROJECT = "fleetdeck-ml"
FIRST_INSTANCE_ID = 4_127_905_120_000_000_000
# Zones every aggregated listing mentions, as the real API lists every zone (empty ones with a warning).
LISTED_ZONES = ("us-central1-a", "us-central1-b", "us-central1-c", "europe-west4-a", "asia-southeast1-b")

# Machine types with built-in GPUs: name → (vCPUs, memory MB, accelerator type, GPU count). Shapes from the
# public machine-type documentation (a2-highgpu-1g matches the captured fixture); the emulator's own data.
MACHINE_TYPES: dict[str, tuple[int, int, str | None, int]] = {
    "a2-highgpu-1g": (12, 87040, "nvidia-tesla-a100", 1),
    "a2-highgpu-2g": (24, 174080, "nvidia-tesla-a100", 2),
    "a2-highgpu-4g": (48, 348160, "nvidia-tesla-a100", 4),
    "a2-highgpu-8g": (96, 696320, "nvidia-tesla-a100", 8),
    "a2-megagpu-16g": (96, 1392640, "nvidia-tesla-a100", 16),
    "a2-ultragpu-1g": (12, 174080, "nvidia-a100-80gb", 1),
    "a2-ultragpu-2g": (24, 348160, "nvidia-a100-80gb", 2),
    "a2-ultragpu-4g": (48, 696320, "nvidia-a100-80gb", 4),
    "a2-ultragpu-8g": (96, 1392640, "nvidia-a100-80gb", 8),
    "a3-highgpu-1g": (26, 239616, "nvidia-h100-80gb", 1),
    "a3-highgpu-2g": (52, 479232, "nvidia-h100-80gb", 2),
    "a3-highgpu-4g": (104, 958464, "nvidia-h100-80gb", 4),
    "a3-highgpu-8g": (208, 1916928, "nvidia-h100-80gb", 8),
    "a3-megagpu-8g": (208, 1916928, "nvidia-h100-mega-80gb", 8),
    "g2-standard-4": (4, 16384, "nvidia-l4", 1),
    "g2-standard-8": (8, 32768, "nvidia-l4", 1),
    "g2-standard-12": (12, 49152, "nvidia-l4", 1),
    "g2-standard-16": (16, 65536, "nvidia-l4", 1),
    "g2-standard-24": (24, 98304, "nvidia-l4", 2),
    "g2-standard-32": (32, 131072, "nvidia-l4", 1),
    "g2-standard-48": (48, 196608, "nvidia-l4", 4),
    "g2-standard-96": (96, 393216, "nvidia-l4", 8),
    "n1-standard-4": (4, 15360, None, 0),
    "n1-standard-8": (8, 30720, None, 0),
    "n1-standard-16": (16, 61440, None, 0),
    "e2-standard-4": (4, 16384, None, 0),
}

# HTTP status → the ``reason`` Compute Engine puts in its error body.
ERROR_REASONS = {
    400: "invalid",
    403: "forbidden",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}
ERROR_MESSAGES = {
    403: "Required 'compute.instances.list' permission for 'projects/{project}'",
    429: "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service "
    "'compute.googleapis.com' for consumer 'project_number:{project}'.",
    500: "Internal error. Please try again or contact Google Support.",
    503: "The service is currently unavailable.",
}

_AGGREGATED = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/aggregated/instances$")
_MACHINE_TYPE = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/machineTypes/(?P<name>[^/]+)$"
)
_INSERT = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instances$")


@dataclass
class Failure:
    """An injected error for a project: answered ``times`` times (None: until cleared), after ``after`` OKs."""

    status: int
    message: str
    times: int | None
    after: int


class GceEmulator:
    """In-memory Compute Engine projects served over HTTP on 127.0.0.1; ``start()``/``stop()`` or ``with``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, dict[str, list[dict]]] = {}  # project → zone → instances
        self._failures: dict[str, Failure] = {}
        self._next_id = FIRST_INSTANCE_ID
        self.machine_types = dict(MACHINE_TYPES)
        self.requests: list[str] = []  # "GET /path?query" of every request, for tests
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> GceEmulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="gce-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GceEmulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- state -------------------------------------------------------------------------------------------
    def add_instance(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        machine_type: str,
        accelerators: tuple[tuple[str, int], ...] | list[tuple[str, int]] = (),
        labels: dict[str, str] | None = None,
        status: str = "RUNNING",
        spot: bool = False,
        preemptible: bool = False,
        created: str = "2025-03-06T03:53:56.000-08:00",
    ) -> dict:
        """Add a VM in the shape ``instances.get`` returns; ``accelerators`` are (type, count) pairs."""
        with self._lock:
            instance_id = self._next_id
            self._next_id += 1
        zone_url = f"{API_BASE}/projects/{project}/zones/{zone}"
        instance = {
            "kind": "compute#instance",
            "id": str(instance_id),
            "creationTimestamp": created,
            "name": name,
            "machineType": f"{zone_url}/machineTypes/{machine_type}",
            "status": status,
            "zone": zone_url,
            "labels": dict(labels or {}),
            "labelFingerprint": base64.b64encode(json.dumps(labels or {}, sort_keys=True).encode()[:8]).decode(),
            "scheduling": {
                "automaticRestart": not (spot or preemptible),
                # VMs with GPUs cannot live-migrate.
                "onHostMaintenance": "TERMINATE",
                "preemptible": preemptible,
                "provisioningModel": "SPOT" if spot else "STANDARD",
            },
            "networkInterfaces": [
                {
                    "name": "nic0",
                    "network": f"{API_BASE}/projects/{project}/global/networks/default",
                    "networkIP": f"10.128.{(instance_id >> 8) % 256}.{instance_id % 256}",
                }
            ],
            "cpuPlatform": "Intel Cascade Lake",
            "selfLink": f"{zone_url}/instances/{name}",
        }
        if accelerators:
            instance["guestAccelerators"] = [
                {"acceleratorCount": count, "acceleratorType": f"{zone_url}/acceleratorTypes/{kind}"}
                for kind, count in accelerators
            ]
        if status == "RUNNING":
            instance["lastStartTimestamp"] = created
        return self.add_raw_instance(project, zone, instance)

    def add_raw_instance(self, project: str, zone: str, instance: dict) -> dict:
        """Add a VM body as given (for feeding the client malformed or unusual data)."""
        with self._lock:
            self._instances.setdefault(project, {}).setdefault(zone, []).append(instance)
        return instance

    def update_instance(self, project: str, name: str, **fields) -> dict:
        """Change fields of a VM (``status="TERMINATED"``, ``labels={…}``)."""
        with self._lock:
            for instances in self._instances.get(project, {}).values():
                for instance in instances:
                    if instance.get("name") == name:
                        instance.update(fields)
                        return instance
        raise KeyError(f"{project}/{name}")

    def remove_instance(self, project: str, name: str) -> None:
        """Delete a VM (it vanishes from listings, as a deleted GCE VM does)."""
        with self._lock:
            for zone, instances in self._instances.get(project, {}).items():
                kept = [i for i in instances if i.get("name") != name]
                if len(kept) != len(instances):
                    self._instances[project][zone] = kept
                    return
        raise KeyError(f"{project}/{name}")

    def fail(
        self, project: str, status: int, *, message: str | None = None, times: int | None = None, after: int = 0
    ) -> None:
        """Answer requests for ``project`` with an error (after ``after`` successful ones, ``times`` times)."""
        text = message or ERROR_MESSAGES.get(status, HTTPStatus(status).phrase).format(project=project)
        with self._lock:
            self._failures[project] = Failure(status, text, times, after)

    def clear_failures(self, project: str | None = None) -> None:
        """Stop failing for ``project`` (or for every project)."""
        with self._lock:
            if project is None:
                self._failures.clear()
            else:
                self._failures.pop(project, None)

    def seed_demo(self, project: str = DEMO_PROJECT) -> None:
        """A small GPU fleet in ``project``: A100, H100, L4 and T4 VMs, a spot one and a stopped one."""
        team = {"team": "research", "project": "llm-pretrain"}
        self.add_instance(project, "us-central1-a", "a100-train-0", machine_type="a2-highgpu-8g", labels=team)
        self.add_instance(project, "us-central1-a", "a100-train-1", machine_type="a2-highgpu-8g", labels=team)
        self.add_instance(project, "us-central1-b", "h100-train-0", machine_type="a3-highgpu-8g", labels=team)
        serve = {"team": "inference", "project": "chat-serving"}
        for n in range(3):
            self.add_instance(project, "us-central1-c", f"l4-serve-{n}", machine_type="g2-standard-8", labels=serve)
        self.add_instance(
            project,
            "europe-west4-a",
            "t4-batch-0",
            machine_type="n1-standard-8",
            accelerators=[("nvidia-tesla-t4", 2)],
            labels={"team": "inference"},
            spot=True,
        )
        self.add_instance(
            project, "europe-west4-a", "l4-dev-0", machine_type="g2-standard-4", status="TERMINATED", labels=serve
        )
        self.add_instance(project, "us-central1-a", "web-frontend", machine_type="e2-standard-4")

    # --- HTTP ----------------------------------------------------------------------------------------------
    def _failure_take(self, project: str) -> Failure | None:
        with self._lock:
            failure = self._failures.get(project)
            if failure is None:
                return None
            if failure.after > 0:
                failure.after -= 1
                return None
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[project]
            return failure

    def _aggregated(self, project: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        try:
            page_size = int(query.get("maxResults", [DEFAULT_PAGE_SIZE])[0])
            offset = int(base64.urlsafe_b64decode(query["pageToken"][0]).decode()) if "pageToken" in query else 0
        except (ValueError, UnicodeDecodeError):
            return _error(400, "Invalid value for field 'pageToken' or 'maxResults'.")
        if not 0 < page_size <= MAX_PAGE_SIZE or offset < 0:
            return _error(400, f"Invalid value for field 'maxResults': {page_size}. Must be in [0, {MAX_PAGE_SIZE}].")
        with self._lock:
            zones = self._instances.get(project, {})
            flat = [(zone, i) for zone in sorted(zones) for i in sorted(zones[zone], key=lambda i: i.get("name", ""))]
            listed = sorted(set(LISTED_ZONES) | set(zones))
        page = flat[offset : offset + page_size]
        items: dict[str, dict] = {}
        for zone, instance in page:
            items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(instance)
        for zone in listed:
            scope = f"zones/{zone}"
            items.setdefault(
                scope,
                {
                    "warning": {
                        "code": "NO_RESULTS_ON_PAGE",
                        "data": [{"key": "scope", "value": scope}],
                        "message": f"There are no results for scope '{scope}' on this page.",
                    }
                },
            )
        body = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{project}/aggregated/instances",
            "items": dict(sorted(items.items())),
            "selfLink": f"{API_BASE}/projects/{project}/aggregated/instances",
        }
        if offset + page_size < len(flat):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(offset + page_size).encode()).decode()
        return 200, body

    def _machine_type(self, project: str, zone: str, name: str) -> tuple[int, dict]:
        shape = self.machine_types.get(name)
        if shape is None:
            return _error(404, f"The resource 'projects/{project}/zones/{zone}/machineTypes/{name}' was not found")
        cpus, memory_mb, accelerator, count = shape
        body = {
            "kind": "compute#machineType",
            "id": str(1_000_000 + sum(map(ord, name))),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": name,
            "description": f"{cpus} vCPUs, {memory_mb // 1024} GB RAM",
            "guestCpus": cpus,
            "memoryMb": memory_mb,
            "imageSpaceGb": 0,
            "maximumPersistentDisks": 128,
            "maximumPersistentDisksSizeGb": "263168",
            "zone": zone,
            "selfLink": f"{API_BASE}/projects/{project}/zones/{zone}/machineTypes/{name}",
            "isSharedCpu": False,
        }
        if accelerator:
            body["accelerators"] = [{"guestAcceleratorType": accelerator, "guestAcceleratorCount": count}]
        return 200, body

    def _insert(self, project: str, zone: str, body: bytes) -> tuple[int, dict]:
        """``instances.insert``: the VM appears RUNNING at once, with its machine type's GPUs; a DONE operation."""
        try:
            request = json.loads(body or b"{}")
            name, machine_type = request["name"], request["machineType"].rsplit("/", 1)[-1]
        except (ValueError, KeyError, AttributeError):
            return _error(400, "Invalid value for field 'resource': name and machineType are required.")
        shape = self.machine_types.get(machine_type)
        if shape is None:
            return _error(400, f"Invalid value for field 'resource.machineType': '{machine_type}'.")
        with self._lock:
            taken = any(i.get("name") == name for i in self._instances.get(project, {}).get(zone, []))
        if taken:
            return _error(409, f"The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists")
        scheduling = request.get("scheduling") or {}
        instance = self.add_instance(
            project,
            zone,
            name,
            machine_type=machine_type,
            accelerators=((shape[2], shape[3]),) if shape[2] else (),
            labels=request.get("labels") or {},
            spot=scheduling.get("provisioningModel") == "SPOT",
        )
        return 200, {
            "kind": "compute#operation",
            "id": instance["id"],
            "name": f"operation-insert-{instance['id']}",
            "operationType": "insert",
            "status": "DONE",
            "progress": 100,
            "zone": f"{API_BASE}/projects/{project}/zones/{zone}",
            "targetLink": instance["selfLink"],
            "targetId": instance["id"],
            "selfLink": f"{API_BASE}/projects/{project}/zones/{zone}/operations/operation-insert-{instance['id']}",
        }

    def _respond(self, method: str, raw_path: str, body: bytes = b"") -> tuple[int, dict]:
        parts = urlsplit(raw_path)
        with self._lock:
            self.requests.append(f"{method} {raw_path}")
        insert = _INSERT.match(parts.path) if method == "POST" else None
        if insert is not None:
            failure = self._failure_take(insert["project"])
            if failure is not None:
                return _error(failure.status, failure.message)
            return self._insert(insert["project"], insert["zone"], body)
        if method != "GET":
            return _error(405, f"{method} is not supported by this emulator.")
        match = _AGGREGATED.match(parts.path) or _MACHINE_TYPE.match(parts.path)
        if match is None:
            return _error(404, f"The requested URL {parts.path} was not found on this server.")
        failure = self._failure_take(match["project"])
        if failure is not None:
            return _error(failure.status, failure.message)
        if match.re is _AGGREGATED:
            return self._aggregated(match["project"], parse_qs(parts.query))
        return self._machine_type(match["project"], match["zone"], match["name"])


def _error(status: int, message: str) -> tuple[int, dict]:
    """Google's JSON error body (as Compute Engine v1 sends it)."""
    reason = ERROR_REASONS.get(status, "invalid")
    detail = {"message": message, "domain": "global", "reason": reason}
    return status, {"error": {"code": status, "message": message, "errors": [detail]}}


def _handler_for(emulator: GceEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received = self.rfile.read(length) if length else b""
            try:
                status, body = emulator._respond(self.command, self.path, received)
            except Exception as exc:  # an emulator bug must reach the client as a 500, not a dropped connection
                status, body = _error(500, f"emulator error: {exc!r}")
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PATCH = _send

        def log_message(self, format: str, *args) -> None:
            pass  # tests and the demo read ``emulator.requests`` instead of stderr noise

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Run the emulator until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devtools.emulators.gce", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--seed-demo", action="store_true", help=f"add a small GPU fleet to project {DEMO_PROJECT}")
    parser.add_argument("--project", default=DEMO_PROJECT, help="project the demo fleet goes into")
    args = parser.parse_args(argv)
    emulator = GceEmulator(args.host, args.port)
    if args.seed_demo:
        emulator.seed_demo(args.project)
    print(f"GCE emulator on {emulator.url} (GCP_COMPUTE_ENDPOINT={emulator.url})", flush=True)
    try:
        emulator._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator._server.server_close()


if __name__ == "__main__":
    main()
