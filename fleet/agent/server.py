"""The agent's HTTP side: GET /metrics (bearer token) and GET /healthz, served by http.server."""

from __future__ import annotations

import gzip
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from fleet.agent.collector import Collector, NvmlUnavailable
from fleet.agent.exposition import CONTENT_TYPE as METRICS_CONTENT_TYPE
from fleet.agent.exposition import render_metrics
from fleet.agent.readings import GpuReading

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
# /healthz answers from a collection at most this old, so unauthenticated probes cannot keep NVML busy.
HEALTHZ_MAX_AGE_S = 5.0
# Level 1 already shrinks the label-heavy text about tenfold, at a fraction of the default level's CPU.
GZIP_LEVEL = 1
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
WWW_AUTHENTICATE = 'Bearer realm="fleetdeck-agent"'


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, body and the headers beyond Content-Length."""

    status: int
    body: bytes
    content_type: str = TEXT_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class Agent:
    """What the agent answers, independent of the server carrying it (a simulator may route to many).

    With ``token=None`` every request is authorised (``--insecure-no-auth``). /healthz always answers, so a
    liveness probe needs no secret; without a valid token it says only its status and, when down, why.
    """

    def __init__(self, collector: Collector, *, token: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        if token is not None and not token:
            raise ValueError("an empty token would let anyone in; pass None to disable auth explicitly")
        self.collector = collector
        self._token = token.encode() if token is not None else None
        self._clock = clock
        self._last: tuple[float, list[GpuReading] | NvmlUnavailable] | None = None

    def authorized(self, authorization: str | None) -> bool:
        """Whether an Authorization header value carries the agent's bearer token."""
        if self._token is None:
            return True
        scheme, _, credentials = (authorization or "").partition(" ")
        # compare_digest even on a wrong scheme, so timing tells nothing about which check failed.
        matches = hmac.compare_digest(credentials.strip().encode(), self._token)
        return scheme.lower() == "bearer" and matches

    def handle(self, path: str, *, authorization: str | None = None, accept_encoding: str = "") -> Response:
        """Answer a GET for ``path`` (query string ignored)."""
        route = urlsplit(path).path
        if route == "/metrics":
            response = self._metrics(authorization)
        elif route == "/healthz":
            response = self._healthz(authorization)
        else:
            response = Response(HTTPStatus.NOT_FOUND, b"not found: try /metrics or /healthz\n")
        if response.status == HTTPStatus.OK and len(response.body) > 0 and _accepts_gzip(accept_encoding):
            return Response(
                response.status,
                gzip.compress(response.body, compresslevel=GZIP_LEVEL),
                response.content_type,
                (*response.headers, ("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")),
            )
        return response

    def _metrics(self, authorization: str | None) -> Response:
        if not self.authorized(authorization):
            return Response(
                HTTPStatus.UNAUTHORIZED, b"unauthorized\n", headers=(("WWW-Authenticate", WWW_AUTHENTICATE),)
            )
        try:
            readings = self._collect()
        except NvmlUnavailable as exc:
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, f"NVML unavailable: {exc}\n".encode())
        body = render_metrics(readings, self.collector.hostname, driver_version=self.collector.driver_version)
        return Response(HTTPStatus.OK, body.encode(), METRICS_CONTENT_TYPE)

    def _collect(self) -> list[GpuReading]:
        try:
            readings = self.collector.collect()
        except NvmlUnavailable as exc:
            self._last = (self._clock(), exc)
            raise
        self._last = (self._clock(), readings)
        return readings

    def _recent(self) -> list[GpuReading]:
        last = self._last
        if last is None or self._clock() - last[0] >= HEALTHZ_MAX_AGE_S:
            return self._collect()
        if isinstance(last[1], NvmlUnavailable):
            raise NvmlUnavailable(str(last[1]))
        return last[1]

    def _healthz(self, authorization: str | None) -> Response:
        try:
            readings = self._recent()
        except NvmlUnavailable as exc:
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unavailable", "reason": str(exc)})
        lost = [{"gpu": r.index, "UUID": r.uuid} for r in readings if r.lost]
        status = "degraded" if lost else "ok"
        if not self.authorized(authorization):
            return _json(HTTPStatus.OK, {"status": status})
        return _json(
            HTTPStatus.OK,
            {
                "status": status,
                "hostname": self.collector.hostname,
                "driver_version": self.collector.driver_version,
                "gpu_count": len(readings),
                "lost_gpus": lost,
                "mig_gpus": [r.index for r in readings if r.mig_instances],
                "errors": [f"gpu {r.index}: {error}" for r in readings for error in r.errors],
            },
        )


def _json(status: int, payload: dict) -> Response:
    return Response(status, (json.dumps(payload) + "\n").encode(), JSON_CONTENT_TYPE)


class _Handler(BaseHTTPRequestHandler):
    server_version = "fleetdeck-agent"
    timeout = REQUEST_TIMEOUT_S  # a client that stops sending cannot hold a thread for long
    server: AgentHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            response = self.server.agent.handle(
                self.path,
                authorization=self.headers.get("Authorization"),
                accept_encoding=self.headers.get("Accept-Encoding", ""),
            )
        except Exception:
            logger.exception("GET %s failed", self.path)
            response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        logger.debug("%s %s", self.address_string(), format % args)


class AgentHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that answers with an Agent."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops connections (1 s SYN retry) when a few scrapers arrive at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], agent: Agent) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.agent = agent


def make_server(agent: Agent, host: str = "0.0.0.0", port: int = 9400) -> AgentHTTPServer:  # noqa: S104
    """A bound, not yet serving, HTTP server for ``agent`` (port 0 picks a free port)."""
    return AgentHTTPServer((host, port), agent)
