"""Keep-alive connection reuse in the fetcher: one connection serves many fetches of one origin, and every
fetch on a reused connection keeps its own total deadline, the no-redirect rule and the size cap."""

import threading
import time

import pytest

from fleet.telemetry import fetch as fetch_module
from fleet.telemetry.fetch import fetch_many, pool_clear
from tests.fleet.telemetry.conftest import read_request

BODY = b"DCGM_FI_DEV_GPU_UTIL 1\n"


@pytest.fixture(autouse=True)
def _empty_pool():
    pool_clear()
    yield
    pool_clear()


class KeepAlive:
    """Per connection: answer each request with ``answers`` in turn (a callable per request), counting both."""

    def __init__(self, answers):
        self.answers, self.connections, self.requests = answers, 0, 0
        self.lock = threading.Lock()

    def __call__(self, sock, stop):
        with self.lock:
            self.connections += 1
        while not stop.is_set():
            head = read_request(sock)
            if not head:
                return
            with self.lock:
                number = self.requests
                self.requests += 1
            if self.answers[min(number, len(self.answers) - 1)](sock) == "close":
                return


def ok(sock):
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))


def ok_then_close(sock):
    ok(sock)
    return "close"  # without saying so: the idle connection in the pool is now dead


def redirect(sock):
    sock.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://example.invalid/\r\nContent-Length: 0\r\n\r\n")


def drip(sock):
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(100):
        time.sleep(0.2)
        sock.sendall(b"x")


def fetch(url, *, reuse=True, deadline_s=5.0):
    return fetch_many([(1, url, "t0ken")], timeout_s=2, concurrency=1, deadline_s=deadline_s, reuse=reuse)[0]


def test_one_connection_serves_many_fetches_of_one_origin(raw_server):
    server = KeepAlive([ok])
    url = raw_server(server).url()
    results = [fetch(url) for _ in range(5)]
    assert [r.body for r in results] == [BODY.decode()] * 5
    assert (server.connections, server.requests) == (1, 5)


def test_without_reuse_each_fetch_opens_its_own_connection(raw_server):
    server = KeepAlive([ok])
    url = raw_server(server).url()
    assert all(fetch(url, reuse=False).body for _ in range(3))
    assert server.connections == 3


def test_a_pooled_connection_the_endpoint_closed_is_replaced(raw_server):
    server = KeepAlive([ok_then_close])
    url = raw_server(server).url()
    assert fetch(url).body == BODY.decode()
    time.sleep(0.1)
    assert fetch(url).body == BODY.decode()
    assert server.connections == 2


def test_a_reused_connection_keeps_the_fetchs_own_deadline(raw_server):
    server = KeepAlive([ok, drip])
    url = raw_server(server).url()
    assert fetch(url).body
    started = time.monotonic()
    result = fetch(url, deadline_s=1.0)
    assert result.body is None
    assert result.error == "timed out: no complete answer within 1 s"
    assert time.monotonic() - started < 2.0
    assert server.connections == 1  # it was the pooled connection that dripped


def test_a_redirect_on_a_reused_connection_is_refused_and_the_connection_dropped(raw_server):
    server = KeepAlive([ok, redirect, ok])
    url = raw_server(server).url()
    assert fetch(url).body
    assert fetch(url).error == "redirect refused (HTTP 302 Found)"
    assert fetch(url).body
    assert server.connections == 2  # the connection that redirected did not go back to the pool


def test_a_body_over_the_cap_on_a_reused_connection_fails_and_is_not_kept(raw_server, monkeypatch):
    monkeypatch.setattr(fetch_module, "MAX_RESPONSE_BYTES", 10)
    server = KeepAlive([ok])
    url = raw_server(server).url()
    assert fetch(url).error == "response larger than 0 MiB"
    assert fetch(url).error == "response larger than 0 MiB"
    assert server.connections == 2


def test_the_pool_keeps_at_most_its_idle_limit(raw_server, monkeypatch):
    monkeypatch.setattr(fetch_module._pool, "max_idle", 2)
    server = KeepAlive([ok])
    url = raw_server(server).url()
    targets = [(i, url, None) for i in range(6)]
    barrier = threading.Barrier(6)
    real_get = fetch_module._get

    def together(*args, **kwargs):
        barrier.wait(timeout=5)  # all six fetches at once: six connections, only two kept
        return real_get(*args, **kwargs)

    monkeypatch.setattr(fetch_module, "_get", together)
    assert all(r.body for r in fetch_many(targets, timeout_s=2, concurrency=6, deadline_s=5))
    assert fetch_module._pool._count == 2
