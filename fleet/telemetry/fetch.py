"""The poller's HTTP fetcher: GET many /metrics endpoints concurrently, each within a total deadline.

Redirects are refused and errors are fixed phrases that never quote the endpoint (docs/agent.md, "Trust model").
Every fetch has its own deadline and all end by the poll's: a target not reached in time comes back as skipped.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus

from django.conf import settings

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
# A fetch whose thread is still out this long after the poll's deadline (a name lookup: no timeout bounds it)
# is left behind and its node reported as skipped.
STRAGGLER_GRACE_S = 1.0
MAX_ERROR_CHARS = 200
USER_AGENT = "fleetdeck-poller"


def error_line(text: str) -> str:
    """``text`` as one bounded line of printable characters, fit to show as a node's last poll error."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:MAX_ERROR_CHARS]


@dataclass(frozen=True)
class FetchResult:
    """What one endpoint answered: the body, or why there is none (or that the poll never got to it)."""

    node_id: int
    body: str | None
    error: str = ""
    elapsed_s: float = 0.0
    skipped: bool = False


class FetchError(Exception):
    """Why an endpoint's answer is not used, in words that never repeat what the endpoint sent."""


class _Deadline:
    """One fetch's total deadline: each blocking step waits its own timeout or what is left, whichever is less."""

    def __init__(self, at: float, step_s: float) -> None:
        self.at, self.step_s = at, step_s
        self.reached = False  # whether the last step waited only until the deadline (so its timeout is the deadline's)

    def timeout(self) -> float:
        remaining = self.at - time.monotonic()
        self.reached = remaining <= self.step_s
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        return min(self.step_s, remaining)


class _DeadlineSocket:
    """A connected socket whose every send and receive ends by the fetch's deadline (what http.client calls).

    Like a socket, it really closes once both the connection and the response's reader are closed.
    """

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock, self._deadline = sock, deadline
        self._readers, self._closed = 0, False

    def rebind(self, deadline: _Deadline) -> None:
        """Serve another fetch (a reused keep-alive connection) under that fetch's deadline."""
        self._deadline = deadline

    def stale(self) -> bool:
        """Whether an idle connection was closed by the endpoint (or has unasked-for bytes): not reusable."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.timeout())
        self._sock.sendall(data)

    def recv_into(self, buffer, nbytes: int = 0) -> int:
        self._sock.settimeout(self._deadline.timeout())
        return self._sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_SocketReader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        self._close_if_unused()

    def close(self) -> None:
        self._closed = True
        self._close_if_unused()

    def _close_if_unused(self) -> None:
        if self._closed and not self._readers:
            self._sock.close()


class _SocketReader(io.RawIOBase):
    """The raw stream under http.client's response reader: one deadline-bounded receive per read."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.reader_closed()
        super().close()


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _connect(host: str, port: int, tls: bool, deadline: _Deadline) -> socket.socket:
    """A TCP (and TLS) connection; connecting and the TLS handshake each end by the deadline."""
    sock = socket.create_connection((host, port), timeout=deadline.timeout())
    if not tls:
        return sock
    try:
        sock.settimeout(deadline.timeout())  # the handshake as a whole waits at most this long
        return _tls_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _status_text(code: int) -> str:
    """'HTTP 503 Service Unavailable': the standard phrase, never the reason the endpoint wrote."""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


class _ConnectionPool:
    """Idle keep-alive connections per origin (scheme, host, port), shared by the fetch threads of a process.

    A connection goes back only after a complete 2xx answer that did not ask to close; one taken out is checked
    for having been closed by the endpoint meanwhile. Measured on the simulator (docs/benchmarks.md, scrape):
    reusing connections fetches 10,000 endpoints about twice as fast as a new connection per request.
    """

    def __init__(self, max_idle: int, idle_s: float) -> None:
        self.max_idle, self.idle_s = max_idle, idle_s
        self._idle: dict[tuple, list[tuple[float, http.client.HTTPConnection, _DeadlineSocket]]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def take(self, key: tuple) -> tuple[http.client.HTTPConnection, _DeadlineSocket] | None:
        while True:
            with self._lock:
                stack = self._idle.get(key)
                if not stack:
                    return None
                since, conn, sock = stack.pop()
                self._count -= 1
            if time.monotonic() - since < self.idle_s and not sock.stale():
                return conn, sock
            conn.close()

    def give(self, key: tuple, conn: http.client.HTTPConnection, sock: _DeadlineSocket) -> None:
        with self._lock:
            if self._count < self.max_idle:
                self._idle.setdefault(key, []).append((time.monotonic(), conn, sock))
                self._count += 1
                return
        conn.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle, self._count = self._idle, {}, 0
        for stack in idle.values():
            for _since, conn, _sock in stack:
                conn.close()


# Idle connections kept per process, and for how long (endpoints close idle keep-alive connections themselves).
POOL_MAX_IDLE = 512
POOL_IDLE_S = 30.0
_pool = _ConnectionPool(POOL_MAX_IDLE, POOL_IDLE_S)
# A reused connection the endpoint closed just as it was taken: these errors before any answer mean "try anew".
_STALE_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def pool_clear() -> None:
    """Close every idle keep-alive connection of this process (tests, benchmarks, a worker shutting down)."""
    _pool.clear()


def _get(url: str, token: str | None, deadline: _Deadline, *, reuse: bool = True) -> bytes:
    """GET ``url`` (http or https) and return the body; a redirect, a non-2xx status or too big a body fail.

    With ``reuse``, an idle keep-alive connection to the same origin is used where there is one, and the
    connection is kept for the next fetch after a complete answer.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("not an http(s) URL")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": "text/plain", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = (tls, parts.hostname, port)
    pooled = _pool.take(key) if reuse else None
    if pooled is not None:
        conn, sock = pooled
        sock.rebind(deadline)
        try:
            return _exchange(conn, sock, key, target, headers, reuse=reuse)
        except _STALE_ERRORS:
            pass  # closed by the endpoint as it was taken: once more on a new connection, same deadline
    conn = http.client.HTTPConnection(parts.hostname, port)
    sock = _DeadlineSocket(_connect(parts.hostname, port, tls, deadline), deadline)
    conn.sock = sock
    return _exchange(conn, sock, key, target, headers, reuse=reuse)


def _exchange(
    conn: http.client.HTTPConnection, sock: _DeadlineSocket, key: tuple, target: str, headers: dict, *, reuse: bool
) -> bytes:
    """One request and its answer on ``conn``; the connection goes back to the pool or is closed."""
    response = None
    keep = False
    try:
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        if 300 <= response.status < 400:
            # Never followed: the token would go wherever the endpoint points (another origin).
            raise FetchError(f"redirect refused ({_status_text(response.status)})")
        if not 200 <= response.status < 300:
            raise FetchError(_status_text(response.status))
        chunks, size = [], 0
        while chunk := response.read(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise FetchError(f"response larger than {MAX_RESPONSE_BYTES // 2**20} MiB")
            chunks.append(chunk)
        keep = reuse and not response.will_close
        return b"".join(chunks)
    finally:
        if response is not None:
            response.close()
        if keep:
            _pool.give(key, conn, sock)
        else:
            conn.close()


def _transport_error(exc: Exception) -> str:
    """A fixed description of a failed fetch: never the exception's text, which may quote the endpoint."""
    if isinstance(exc, FetchError):
        return str(exc)
    if isinstance(exc, http.client.IncompleteRead):
        return "answer cut short"
    if isinstance(exc, http.client.HTTPException):  # BadStatusLine, RemoteDisconnected, LineTooLong, …
        return f"not an HTTP answer ({type(exc).__name__})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(exc, ssl.SSLError):
        return "TLS failed"
    if isinstance(exc, socket.gaierror):
        return "unreachable: host name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable: connection refused"
    if isinstance(exc, ConnectionError):
        return "connection closed by the endpoint"
    if isinstance(exc, OSError):
        return f"unreachable: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, ValueError):  # a port out of range, control characters in the URL, …
        return "invalid URL"
    return f"fetch failed ({type(exc).__name__})"


def _fetch(
    node_id: int,
    url: str,
    token: str | None,
    *,
    timeout_s: float,
    deadline_s: float,
    poll_deadline: float,
    reuse: bool = True,
) -> FetchResult:
    """Fetch one endpoint within ``deadline_s`` (and the poll's deadline); whatever fails is this node's only."""
    started = time.monotonic()
    if started >= poll_deadline:
        return FetchResult(node_id, None, skipped=True)
    own_deadline = started + deadline_s
    deadline = _Deadline(min(own_deadline, poll_deadline), timeout_s)
    try:
        body = _get(url, token, deadline, reuse=reuse)
        return FetchResult(node_id, body.decode("utf-8", "replace"), "", time.monotonic() - started)
    except TimeoutError:
        if not deadline.reached:
            error = f"timed out after {timeout_s:g} s"
        elif deadline.at < own_deadline:
            # Cut short by the poll's deadline, not its own: not this node's fault.
            return FetchResult(node_id, None, elapsed_s=time.monotonic() - started, skipped=True)
        else:
            error = f"timed out: no complete answer within {deadline_s:g} s"
    except Exception as exc:  # any failure, even one not foreseen here, must stay this node's
        error = _transport_error(exc)
    return FetchResult(node_id, None, error, time.monotonic() - started)


def fetch_many(
    targets: Iterable[tuple[int, str, str | None]],
    *,
    timeout_s: float,
    concurrency: int,
    deadline_s: float | None = None,
    poll_deadline: float | None = None,
    reuse: bool = True,
) -> list[FetchResult]:
    """Fetch (node_id, url, token) targets concurrently, each within its own deadline and all by the poll's.

    ``deadline_s`` defaults to TELEMETRY_FETCH_DEADLINE_S, ``poll_deadline`` (a ``time.monotonic()`` value) to
    TELEMETRY_POLL_DEADLINE_S from now. Targets not fetched by then come back as skipped. ``reuse=False`` opens
    a new connection per fetch (the baseline the scrape benchmark measures keep-alive reuse against).
    """
    targets = list(targets)
    if not targets:
        return []
    if deadline_s is None:
        deadline_s = settings.TELEMETRY_FETCH_DEADLINE_S
    if poll_deadline is None:
        poll_deadline = time.monotonic() + settings.TELEMETRY_POLL_DEADLINE_S
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(targets))))
    try:
        futures = [
            pool.submit(
                _fetch,
                pk,
                url,
                token,
                timeout_s=timeout_s,
                deadline_s=deadline_s,
                poll_deadline=poll_deadline,
                reuse=reuse,
            )
            for pk, url, token in targets
        ]
        wait(futures, timeout=max(0.0, poll_deadline - time.monotonic()) + STRAGGLER_GRACE_S)
    finally:
        # Never wait for a straggler: its thread ends on its own, the poll does not wait for it.
        pool.shutdown(wait=False, cancel_futures=True)
    return [
        future.result() if future.done() and not future.cancelled() else FetchResult(pk, None, skipped=True)
        for future, (pk, _url, _token) in zip(futures, targets, strict=True)
    ]
