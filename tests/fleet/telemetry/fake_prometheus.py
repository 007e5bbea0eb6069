"""A stand-in Prometheus HTTP API for the PromQL source's tests: /api/v1/query_range over series set by the test."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakePrometheus:
    """Answers ``query_range`` from ``series[metric] = [(labels, value or f(ts)), …]`` at every step.

    Per metric, ``bodies`` replaces the answer with raw bytes, ``statuses`` the HTTP status, ``hang_s`` delays
    it and ``redirects`` answers 302 to a location. ``requests`` records (path, params, Authorization).
    """

    def __init__(self):
        self.series: dict[str, list[tuple[dict, object]]] = {}
        self.bodies: dict[str, bytes] = {}
        self.statuses: dict[str, int] = {}
        self.hang_s: dict[str, float] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, dict, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                parts = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(parts.query))
                fake.requests.append((parts.path, params, self.headers.get("Authorization")))
                metric = params.get("query", "").split("{")[0]
                time.sleep(fake.hang_s.get(metric, 0))
                if metric in fake.redirects:
                    self.send_response(302)
                    self.send_header("Location", fake.redirects[metric])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = fake.bodies.get(metric)
                if body is None:
                    body = json.dumps(fake.matrix(metric, params)).encode()
                self.send_response(fake.statuses.get(metric, 200))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def matrix(self, metric: str, params: dict) -> dict:
        start, end, step = (int(float(params[k])) for k in ("start", "end", "step"))
        result = []
        for labels, value in self.series.get(metric, []):
            values = []
            for ts in range(start, end + 1, step):
                v = value(ts) if callable(value) else value
                if v is not None:
                    values.append([ts, v if isinstance(v, str) else repr(float(v))])
            result.append({"metric": {"__name__": metric, **labels}, "values": values})
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def gpu_labels(uuid: str, index: int, hostname: str, model: str = "NVIDIA H100 80GB HBM3") -> dict:
    """The labels dcgm-exporter puts on a GPU's series, plus the instance/job Prometheus adds."""
    return {
        "UUID": uuid,
        "gpu": str(index),
        "device": f"nvidia{index}",
        "modelName": model,
        "Hostname": hostname,
        "instance": f"{hostname}:9400",
        "job": "dcgm",
    }
