"""Polling: fetch every node's /metrics concurrently, parse, store samples, update node and GPU state.

One call polls many nodes; a node that times out, answers badly or reports values no column can hold affects
only its own row (failure count, then ``unreachable``; or a note in ``last_poll_error``), never the others'.
Every fetch has a total deadline, and so has the whole poll: a node not reached in time is reported as
skipped. Samples carry the poll *slot* (the time beat scheduled the poll, rounded down to the poll interval)
as their timestamp, so a retried poll of the same slot stores nothing twice.

What the poller trusts (docs/agent.md, "Trust model"): token references resolve only from the allow-list in
``fleet.validators``, redirects are refused, and node errors are fixed phrases that never quote the endpoint.

The parts: ``fleet.telemetry.tokens`` resolves token references, ``fleet.telemetry.fetch`` fetches,
``fleet.telemetry.readings`` accepts readings, ``fleet.telemetry.ingest`` stores them and updates nodes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet.choices import NodeState
from fleet.models import Node
from fleet.telemetry.exposition import GpuReading, parse_exposition
from fleet.telemetry.fetch import error_line, fetch_many
from fleet.telemetry.ingest import nodes_update, readings_store
from fleet.telemetry.readings import readings_accept
from fleet.telemetry.report import PollReport, poll_slot, slot_time
from fleet.telemetry.tokens import TokenRefError, token_resolve

POLLED_STATES = (NodeState.RUNNING, NodeState.UNREACHABLE)
# Re-exported: callers (the API, tasks, devtools' benchmarks) import these from here.
__all__ = [
    "POLLED_STATES",
    "PollReport",
    "fetch_many",
    "poll_slot",
    "readings_store",
    "telemetry_poll",
    "token_resolve",
]


def telemetry_poll(
    *, node_ids: Iterable[int] | None = None, now: datetime | None = None, scheduled_at: datetime | None = None
) -> PollReport:
    """Poll the running and unreachable nodes that have an endpoint (or just ``node_ids``); store what they say.

    The samples' slot comes from ``scheduled_at`` (when beat scheduled this poll) where given, see slot_time.
    The poll ends within TELEMETRY_POLL_DEADLINE_S (plus storing); nodes not fetched by then are skipped.
    """
    poll_deadline = time.monotonic() + settings.TELEMETRY_POLL_DEADLINE_S
    now = now or timezone.now()
    report = PollReport(slot=poll_slot(slot_time(now, scheduled_at)))
    nodes = Node.objects.filter(state__in=POLLED_STATES).exclude(telemetry_url="")
    if node_ids is not None:
        nodes = nodes.filter(pk__in=list(node_ids))
    rows = list(nodes.values_list("pk", "telemetry_url", "token_ref", "consecutive_poll_failures", "state"))
    report.nodes_polled = len(rows)
    targets, failures = [], {}
    # Most nodes share one reference: resolve each once per poll, not once per node (a file read each).
    tokens: dict[str, str | None | TokenRefError] = {}
    for pk, url, token_ref, *_ in rows:
        if token_ref not in tokens:
            try:
                tokens[token_ref] = token_resolve(token_ref)
            except TokenRefError as exc:
                tokens[token_ref] = exc
        token = tokens[token_ref]
        if isinstance(token, TokenRefError):
            failures[pk] = error_line(str(token))
        else:
            targets.append((pk, url, token))
    results = fetch_many(
        targets,
        timeout_s=settings.TELEMETRY_POLL_TIMEOUT_S,
        concurrency=settings.TELEMETRY_POLL_CONCURRENCY,
        poll_deadline=poll_deadline,
    )
    readings_by_node: dict[int, list[GpuReading]] = {}
    for result in results:
        if result.skipped:
            report.nodes_skipped.append(result.node_id)
        elif result.body is None:
            failures[result.node_id] = error_line(result.error)
        else:
            parsed = parse_exposition(result.body)
            report.malformed_lines += parsed.malformed
            readings_by_node[result.node_id] = readings_accept(result.node_id, parsed.readings.values(), report)
    report.nodes_ok = len(readings_by_node)
    report.errors = failures
    readings_store(readings_by_node, report, whole_scrapes=True)
    # All or nothing: a poll that fails here and is retried (a scrape shard) counts no node's failure twice.
    with transaction.atomic():
        nodes_update(rows, set(readings_by_node), failures, now, report)
    return report
