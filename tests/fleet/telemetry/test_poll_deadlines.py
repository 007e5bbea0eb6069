"""Deadlines: a fetch ends within its total deadline however slowly an endpoint drips, and a poll cycle ends
within its own deadline, reporting the nodes it did not reach as skipped."""

import time
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from core.choices import Role
from fleet.models import Node
from fleet.telemetry.poll import telemetry_poll
from tests.factories import NodeFactory
from tests.fleet.telemetry.conftest import read_request

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)
DRIP_S = 0.3  # well under the per-read timeout, so only a total deadline can stop these endpoints
SLACK_S = 1.0


@pytest.fixture
def deadlines(settings):
    settings.TELEMETRY_POLL_TIMEOUT_S = 1
    settings.TELEMETRY_FETCH_DEADLINE_S = 1.5
    settings.TELEMETRY_POLL_DEADLINE_S = 2.5
    return settings


def drip_body(sock, stop):
    """Answer at once, then send the body one byte at a time, forever."""
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    while not stop.wait(DRIP_S):
        sock.sendall(b"#")


def drip_head(sock, stop):
    """Send the status line and headers one byte at a time, forever."""
    read_request(sock)
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 10_000
    for byte in head:
        if stop.wait(DRIP_S):
            return
        sock.sendall(bytes([byte]))


@pytest.mark.parametrize("speak", [drip_body, drip_head])
def test_a_dripping_endpoint_is_cut_at_the_fetch_deadline(deadlines, raw_server, speak):
    node = NodeFactory(telemetry_url=raw_server(speak).url())
    started = time.monotonic()
    report = telemetry_poll(now=NOW)
    elapsed = time.monotonic() - started
    assert elapsed < deadlines.TELEMETRY_FETCH_DEADLINE_S + SLACK_S
    assert report.errors[node.pk] == "timed out: no complete answer within 1.5 s"


def test_poll_now_has_the_same_deadline(deadlines, raw_server, api_client):
    node = NodeFactory(telemetry_url=raw_server(drip_body).url())
    started = time.monotonic()
    response = api_client(Role.OPERATOR).post(reverse("api:node-poll", args=[node.pk]))
    assert time.monotonic() - started < deadlines.TELEMETRY_FETCH_DEADLINE_S + SLACK_S
    assert response.status_code == 200
    assert response.data["errors"] == {str(node.pk): "timed out: no complete answer within 1.5 s"}


def test_nodes_not_reached_before_the_poll_deadline_are_skipped(deadlines, raw_server):
    deadlines.TELEMETRY_POLL_CONCURRENCY = 1  # one endpoint after the other
    server = raw_server(drip_body)
    first, second, third = (NodeFactory(name=f"drip-{i}", telemetry_url=server.url()) for i in range(3))
    started = time.monotonic()
    report = telemetry_poll(now=NOW)
    assert time.monotonic() - started < deadlines.TELEMETRY_POLL_DEADLINE_S + SLACK_S
    # The first used its whole fetch deadline; the second was cut by the poll's; the third never started.
    assert report.errors == {first.pk: "timed out: no complete answer within 1.5 s"}
    assert report.nodes_skipped == [second.pk, third.pk]
    assert report.as_dict()["nodes_skipped"] == [second.pk, third.pk]
    failures = dict(Node.objects.values_list("name", "consecutive_poll_failures"))
    assert failures == {"drip-0": 1, "drip-1": 0, "drip-2": 0}  # not reached is no fault of the node
