"""A stand-in dcgm-exporter: a real HTTP server on 127.0.0.1 serving metrics text per path."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeExporter:
    """Serves ``/<name>/metrics`` with text set by the test; can fail, hang or demand a bearer token."""

    def __init__(self):
        self.bodies: dict[str, str] = {}
        self.statuses: dict[str, int] = {}
        self.hang_s: dict[str, float] = {}
        self.redirects: dict[str, str] = {}
        self.token: str | None = None
        self.requests: list[tuple[str, str | None]] = []
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                exporter.requests.append((self.path, self.headers.get("Authorization")))
                name = self.path.strip("/").removesuffix("/metrics")
                time.sleep(exporter.hang_s.get(name, 0))
                if exporter.token and self.headers.get("Authorization") != f"Bearer {exporter.token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                if name in exporter.redirects:
                    self.send_response(302)
                    self.send_header("Location", exporter.redirects[name])
                    self.end_headers()
                    return
                status = exporter.statuses.get(name, 200 if name in exporter.bodies else 404)
                body = exporter.bodies.get(name, "").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}/metrics"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter():
    server = FakeExporter()
    yield server
    server.close()


class RawServer:
    """A TCP server on 127.0.0.1 that hands each connection to ``speak(sock, stop)``: garbage, drips, anything."""

    def __init__(self, speak: Callable[[socket.socket, threading.Event], None]):
        self.stop = threading.Event()
        stop = self.stop

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with contextlib.suppress(OSError):  # the client gave up: what these servers are for
                    speak(self.request, stop)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/metrics") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def read_request(sock: socket.socket) -> bytes:
    """Read one HTTP request head (up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def raw_server():
    """Start RawServers for a test: ``raw_server(speak)``; all are stopped at teardown."""
    servers = []

    def start(speak) -> RawServer:
        servers.append(RawServer(speak))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def dcgm_text(gpus: list[dict], hostname: str = "node-1") -> str:
    """dcgm-exporter-style text for GPUs given as dicts of uuid, index, model and field values."""
    names = {
        "util": "DCGM_FI_DEV_GPU_UTIL",
        "power": "DCGM_FI_DEV_POWER_USAGE",
        "temp": "DCGM_FI_DEV_GPU_TEMP",
        "used": "DCGM_FI_DEV_FB_USED",
        "free": "DCGM_FI_DEV_FB_FREE",
        "clock": "DCGM_FI_DEV_SM_CLOCK",
        "xid": "DCGM_FI_DEV_XID_ERRORS",
        "sbe": "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "dbe": "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "lost": "fleetdeck_agent_gpu_lost",
    }
    lines = []
    for key, metric in names.items():
        lines.append(f"# TYPE {metric} gauge")
        for gpu in gpus:
            if key in gpu:
                labels = (
                    f'gpu="{gpu["index"]}",UUID="{gpu["uuid"]}",device="nvidia{gpu["index"]}",'
                    f'modelName="{gpu.get("model", "NVIDIA H100 80GB HBM3")}",Hostname="{hostname}"'
                )
                lines.append(f"{metric}{{{labels}}} {gpu[key]}")
    return "\n".join(lines) + "\n"
