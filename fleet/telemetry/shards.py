"""Scrape shards: the beat tick splits the polled nodes into shards by a stable hash of their id, and one task
per shard polls its nodes into the tick's slot (docs/telemetry.md, "Scrape shards").

A shard run holds a PostgreSQL advisory lock for its (slot, index, count), so the same shard of the same slot
never runs twice at once, and leaves a marker in the cache once it stored, so a redelivered or duplicated
message for a finished shard does nothing. Every run (or failed run) is recorded in the source health rows.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone

from fleet.choices import TelemetrySourceKind
from fleet.models import Node
from fleet.telemetry.health import SourceRun, source_health_record
from fleet.telemetry.poll import POLLED_STATES, telemetry_poll
from fleet.telemetry.report import PollReport, poll_slot, slot_time

logger = logging.getLogger(__name__)
_U64 = 2**64 - 1
_JUMP_MULTIPLIER = 2862933555777941757  # Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
# How long a finished shard's marker stays: past any redelivery of its message, well before the slot is reused.
DONE_MARKER_INTERVALS = 8


def shard_of(node_id: int, count: int) -> int:
    """The shard (0 … count-1) of a node: a jump consistent hash of its id, the same in every process and run.

    Growing the fleet from n to n+1 shards moves only about 1/(n+1) of the nodes to another shard.
    """
    key = int.from_bytes(hashlib.blake2b(str(node_id).encode(), digest_size=8).digest(), "big")
    bucket, jump = -1, 0
    while jump < count:
        bucket = jump
        key = (key * _JUMP_MULTIPLIER + 1) & _U64
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def shard_count(nodes: int) -> int:
    """How many shards ``nodes`` polled nodes make: ceil(nodes / TELEMETRY_SHARD_SIZE), at least one."""
    return max(1, math.ceil(nodes / max(1, settings.TELEMETRY_SHARD_SIZE)))


def shards_plan(node_ids: Iterable[int]) -> list[list[int]]:
    """The node ids of each shard, by shard index (a shard may be empty when the hash leaves it so)."""
    ids = sorted(set(node_ids))
    shards: list[list[int]] = [[] for _ in range(shard_count(len(ids)))]
    for pk in ids:
        shards[shard_of(pk, len(shards))].append(pk)
    return shards


def polled_node_ids() -> list[int]:
    """The nodes a poll cycle covers: running or unreachable, with an endpoint."""
    nodes = Node.objects.filter(state__in=POLLED_STATES).exclude(telemetry_url="")
    return list(nodes.values_list("pk", flat=True))


def shard_name(index: int, count: int) -> str:
    """The shard's name in the source health rows: '<index>/<count>'."""
    return f"{index}/{count}"


def _lock_key(slot: datetime, index: int, count: int) -> int:
    """A signed 64-bit advisory lock key for one shard of one slot."""
    digest = hashlib.blake2b(f"fleetdeck-shard:{slot.isoformat()}:{index}/{count}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _done_key(slot: datetime, index: int, count: int) -> str:
    return f"fleet:telemetry-shard-done:{slot.isoformat()}:{index}/{count}"


def shard_is_late(now: datetime, scheduled_at: datetime | None) -> bool:
    """Whether a shard starting at ``now`` starts after the slot it was scheduled for has passed."""
    if scheduled_at is None:
        return False
    return now >= poll_slot(scheduled_at) + timedelta(seconds=settings.TELEMETRY_POLL_INTERVAL_S)


def _record(run: SourceRun, now: datetime) -> None:
    # Health is for the operator: failing to record it must not fail (and so retry) a shard that stored.
    try:
        source_health_record(run, now=now)
    except DatabaseError:
        logger.exception("could not record the health of scrape shard %s", run.name)


def _outcome(report: PollReport) -> tuple[bool, str]:
    """A shard whose nodes all failed counts as a failed run; some nodes failing is each node's own error."""
    failed, skipped = len(report.errors), len(report.nodes_skipped)
    if report.nodes_polled and not report.nodes_ok:
        return False, f"no node answered: {failed} failed, {skipped} skipped of {report.nodes_polled}"
    return True, ""


def shard_poll(
    *, index: int, count: int, node_ids: Iterable[int], scheduled_at: datetime | None, now: datetime | None = None
) -> PollReport | None:
    """Poll one shard's nodes into the slot of ``scheduled_at`` (see slot_time) and record the run's health.

    Returns None, doing nothing, when another run of this shard and slot holds its lock or has already stored
    it. An exception (the database failing, say) is recorded as a failed run and raised, for the task to retry.
    """
    now = now or timezone.now()
    slot = poll_slot(slot_time(now, scheduled_at))
    late = shard_is_late(now, scheduled_at)
    name = shard_name(index, count)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_lock_key(slot, index, count)])
        if not cursor.fetchone()[0]:
            logger.warning("scrape shard %s of slot %s is already running; skipping this one", name, slot)
            return None
        try:
            if cache.get(_done_key(slot, index, count)):
                logger.warning("scrape shard %s of slot %s already stored; skipping this one", name, slot)
                return None
            started = time.monotonic()
            try:
                report = telemetry_poll(node_ids=list(node_ids), now=now, scheduled_at=scheduled_at)
            except Exception as exc:
                failed = SourceRun(
                    TelemetrySourceKind.SCRAPE_SHARD,
                    name,
                    ok=False,
                    error=_failure(exc),
                    late=late,
                    duration_s=time.monotonic() - started,
                )
                _record(failed, now)
                raise
            duration_s = time.monotonic() - started
            interval = settings.TELEMETRY_POLL_INTERVAL_S
            cache.set(_done_key(slot, index, count), 1, timeout=interval * DONE_MARKER_INTERVALS)
            ok, error = _outcome(report)
            run = SourceRun(
                TelemetrySourceKind.SCRAPE_SHARD,
                name,
                ok=ok,
                samples=report.samples_added,
                error=error,
                late=late,
                newest_sample_at=report.slot if report.gpus_seen else None,
                duration_s=duration_s,
            )
            _record(run, now)
            return report
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(slot, index, count)])


def _failure(exc: Exception) -> str:
    """A fixed phrase for a failed shard run: the exception's type, never its text (it may quote an endpoint)."""
    return f"shard failed ({type(exc).__name__})"
