"""Prometheus remote-write 1.0 in: a snappy-compressed ``prometheus.WriteRequest`` turned into stored GPU readings.

The body is decoded within TELEMETRY_REMOTE_WRITE_MAX_BYTES (the snappy header's uncompressed length is checked
before anything is decompressed, so a decompression bomb allocates nothing). dcgm-exporter series are mapped
exactly as a scrape maps them (``fleet.telemetry.exposition``: the same metric table, the same label rules),
grouped into one reading per GPU and poll slot (a sample's own timestamp rounded down to
TELEMETRY_POLL_INTERVAL_S, the slot a scrape stores under), and stored through the scrape's path
(``readings_accept`` then ``readings_store``), so validation, GPU caps and idempotence are the same: a slot
stored once is never stored again, whichever request or scrape brings it.

What cannot be stored is counted by reason and skipped, never failing the rest of the request: series
without a UUID label, NaN/±Inf values, timestamps outside the raw retention (or in the future), duplicate or
older samples of a slot already read, values out of range, and GPUs Fleetdeck does not know. An unknown GPU
is registered under the node whose name equals its ``Hostname`` label (or the host part of ``instance``);
with no such node (or several) it is skipped with that reason.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import cramjam
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from google.protobuf.message import DecodeError

from fleet.choices import NodeState, TelemetrySourceKind
from fleet.models import Node
from fleet.telemetry.exposition import FIELDS, GpuReading, labels_series_key, reading_new, reading_set
from fleet.telemetry.health import SourceRun, source_health_record
from fleet.telemetry.ingest import readings_store
from fleet.telemetry.readings import readings_accept
from fleet.telemetry.remote_write_pb import TimeSeries, WriteRequestRaw, WriteRequestSamples
from fleet.telemetry.report import PollReport

FUTURE_TOLERANCE = timedelta(minutes=5)  # sender clocks run a little ahead
NODE_SEEN_EVERY_S = 5  # a node's last_seen is moved at most this often (every request would contend on it)
MAX_CACHED_LABEL_SETS = 250_000  # distinct label sets (~400 B each): 13 per GPU, ~19,000 GPUs
MAX_REPORTED_GPUS = 20
IGNORED = "ignored"  # a series of a metric Fleetdeck does not store (up, scrape_*, other exporters' series)

SKIP_NO_UUID = "no UUID label"
SKIP_NON_FINITE = "value is NaN or ±Inf"
SKIP_WINDOW = "timestamp outside the raw retention or in the future"
SKIP_DUPLICATE = "duplicate sample (same series and timestamp)"
SKIP_SAME_SLOT = "another sample of the series in the same poll slot (the newest is kept)"
SKIP_OUT_OF_RANGE = "value out of range, or over TELEMETRY_MAX_GPUS_PER_NODE"
SKIP_UNKNOWN_GPU = "unknown GPU: no GPU with this UUID and no single node named by its Hostname/instance label"
SKIP_BAD_SERIES = "a label is not valid UTF-8"


class RemoteWriteError(Exception):
    """A request that cannot be read at all: ``status`` is the HTTP answer (400, 413, 415), ``reason`` says why."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class RemoteWriteResult:
    """What one request did: samples received, accepted and skipped (by reason), rows stored."""

    samples_received: int = 0
    samples_accepted: int = 0
    samples_ignored: int = 0  # series of metrics Fleetdeck does not store: not an error
    rows_stored: int = 0
    rows_already_stored: int = 0
    gpus_created: int = 0
    health_events: int = 0
    skipped: Counter = field(default_factory=Counter)
    unknown_gpus: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    newest_sample_at: datetime | None = None

    @property
    def samples_skipped(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict:
        return {
            "samples_received": self.samples_received,
            "samples_accepted": self.samples_accepted,
            "samples_ignored": self.samples_ignored,
            "samples_skipped": self.samples_skipped,
            "skipped": dict(self.skipped),
            "rows_stored": self.rows_stored,
            "rows_already_stored": self.rows_already_stored,
            "gpus_created": self.gpus_created,
            "health_events": self.health_events,
            "unknown_gpus": self.unknown_gpus,
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        """One line for the source's health row: what was skipped, and why."""
        parts = [f"{count} {reason}" for reason, count in self.skipped.most_common(3)]
        return "samples skipped: " + "; ".join(parts) if parts else ""


def _uvarint(data: bytes) -> int:
    """The varint at the start of a snappy block: its uncompressed length."""
    result = shift = 0
    for position, byte in enumerate(data[:10]):
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if position >= 5 or result >= 2**32:
                break
            return result
        shift += 7
    raise RemoteWriteError(400, "body is not snappy block format: bad uncompressed-length header")


def body_decode(body: bytes, *, max_bytes: int | None = None):
    """The WriteRequest of a snappy block body; RemoteWriteError (400 or 413) if it cannot be read."""
    max_bytes = max_bytes or settings.TELEMETRY_REMOTE_WRITE_MAX_BYTES
    if len(body) > max_bytes:
        raise RemoteWriteError(413, f"body over {max_bytes} bytes (TELEMETRY_REMOTE_WRITE_MAX_BYTES)")
    if not body:
        raise RemoteWriteError(400, "empty body: expected a snappy-compressed prometheus.WriteRequest")
    length = _uvarint(body)
    if length > max_bytes:
        raise RemoteWriteError(
            413, f"body decompresses to {length} bytes, over {max_bytes} (TELEMETRY_REMOTE_WRITE_MAX_BYTES)"
        )
    try:
        raw = cramjam.snappy.decompress_raw(body)
    except cramjam.DecompressionError as exc:
        raise RemoteWriteError(400, f"body is not valid snappy block format (truncated or corrupt): {exc}") from None
    raw = bytes(raw)
    try:
        samples = WriteRequestSamples.FromString(raw)
        series = WriteRequestRaw.FromString(raw).timeseries
    except DecodeError:
        raise RemoteWriteError(400, "body is not a protobuf prometheus.WriteRequest") from None
    samples.DiscardUnknownFields()  # the labels: read from the series' bytes, once per distinct label set
    return DecodedRequest(series, samples.timeseries)


@dataclass(frozen=True)
class DecodedRequest:
    """A WriteRequest as two views: each series' raw bytes, and each series' samples (labels unread)."""

    series: object
    samples: object


_series_cache: dict[bytes, tuple | str] = {}


SPLIT = "split"  # a label part that is not labels alone: read that series whole (_labels_canonical)


def _labels_canonical(raw: bytes) -> bytes:
    """A series' labels encoded as senders write them (the cache key), from its bytes; DecodeError if bad."""
    return TimeSeries(labels=TimeSeries.FromString(raw).labels).SerializeToString()


def _instance_host(instance: str) -> str:
    """The host part of an ``instance`` label (``host:port``, ``[v6]:port``, or a bare host)."""
    if instance.startswith("["):
        return instance[1 : instance.find("]")] if "]" in instance else instance
    return instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance


def _series_map(labels: bytes) -> tuple | str:
    """What a series' label part maps to: (attribute, series key, host), IGNORED, the reason it is skipped, or
    SPLIT where the bytes are not exactly a set of labels (a sender that writes fields in another order)."""
    try:
        message = TimeSeries.FromString(labels)
    except DecodeError:
        return SPLIT
    if message.samples:
        return SPLIT
    message.DiscardUnknownFields()
    if message.ByteSize() != len(labels):
        return SPLIT
    parsed = {label.name: label.value for label in message.labels}
    attr = FIELDS.get(parsed.get("__name__", ""))
    if attr is None:
        return IGNORED
    key = labels_series_key(parsed)
    if key.__class__ is str or not key.uuid:
        return SKIP_NO_UUID  # (a gpu index alone names no GPU across a fleet)
    return attr, key, key.hostname or _instance_host(parsed.get("instance", ""))


def _readings_collect(request, result: RemoteWriteResult, now: datetime):
    """Group the request's samples into one reading per (slot in ms, UUID); count what is skipped."""
    interval_ms = settings.TELEMETRY_POLL_INTERVAL_S * 1000
    oldest_ms = int((now - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_H)).timestamp() * 1000)
    newest_ms = int((now + FUTURE_TOLERANCE).timestamp() * 1000)
    inf = math.inf
    cache = _series_cache
    skipped = result.skipped
    readings: dict[tuple[int, str], GpuReading] = {}
    counts: dict[tuple[int, str], int] = {}  # accepted samples per reading
    hosts: dict[str, str] = {}
    seen: dict[tuple, int] = {}  # (slot, uuid, attr, MIG instance) -> timestamp of the value kept
    received = ignored = 0
    for raw, series in zip(request.series, request.samples, strict=True):
        samples = series.samples
        # Senders write the labels first, then the samples: the bytes before the samples are the label part.
        labels = raw[: len(raw) - series.ByteSize()]
        mapped = cache.get(labels)
        if mapped is None:
            if len(cache) >= MAX_CACHED_LABEL_SETS:
                cache.clear()
            mapped = cache[labels] = _series_map(labels)
        if mapped is SPLIT:
            try:
                labels = _labels_canonical(raw)
            except DecodeError:
                skipped[SKIP_BAD_SERIES] += len(samples) or 1
                continue
            mapped = cache.get(labels) or cache.setdefault(labels, _series_map(labels))
        received += len(samples)
        if mapped.__class__ is str and samples:
            if mapped is IGNORED:
                ignored += len(samples)
            else:
                skipped[mapped] += len(samples)
            continue
        if mapped.__class__ is str:
            continue
        attr, key, host = mapped
        uuid, instance = key.uuid, key.mig_instance
        for sample in samples:
            value = sample.value
            if value != value or value == inf or value == -inf:
                skipped[SKIP_NON_FINITE] += 1
                continue
            ts = sample.timestamp
            if ts < oldest_ms or ts > newest_ms:
                skipped[SKIP_WINDOW] += 1
                continue
            slot = ts - ts % interval_ms
            seen_key = (slot, uuid, attr, instance)
            kept = seen.get(seen_key)
            reading_key = (slot, uuid)
            if kept is None:
                reading = readings.get(reading_key)
                if reading is None:
                    reading = readings[reading_key] = reading_new(key)
                    counts[reading_key] = 0
                    hosts.setdefault(uuid, host)
                counts[reading_key] += 1
            elif ts == kept:
                skipped[SKIP_DUPLICATE] += 1
                continue
            else:
                skipped[SKIP_SAME_SLOT] += 1
                if ts < kept:
                    continue
                reading = readings[reading_key]
            seen[seen_key] = ts
            if instance is None:
                reading.__dict__[attr] = value
            else:
                reading_set(reading, key, attr, value)
    result.samples_received += received
    result.samples_ignored += ignored
    return readings, counts, hosts


def _gpus_lock(uuids: list[str]) -> None:
    """Lock the known GPUs' rows in id order (inside the storing transaction).

    Prometheus sends one GPU's series through several shards at once, so concurrent requests update the same
    GPU rows; PostgreSQL would lock them in whatever order each UPDATE meets them, and two requests could
    deadlock. Locked in one order first, they wait for each other instead.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM fleet_gpu WHERE uuid = ANY(%s) ORDER BY id FOR UPDATE", [uuids])


def _nodes_seen(node_ids: set[int], now: datetime) -> None:
    """Mark the nodes heard from (rows locked in id order, and only once a few seconds, as above)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE fleet_node SET last_seen = %s WHERE id IN (SELECT id FROM fleet_node WHERE id = ANY(%s) "
            "AND (last_seen IS NULL OR last_seen < %s) ORDER BY id FOR UPDATE)",
            [now, sorted(node_ids), now - timedelta(seconds=NODE_SEEN_EVERY_S)],
        )


def _nodes_of(uuids: set[str], hosts: dict[str, str], result: RemoteWriteResult) -> dict[str, int]:
    """The node each UUID's readings go to: its GPU's node, else the single live node named by its host label."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT uuid, node_id FROM fleet_gpu WHERE uuid = ANY(%s)", [list(uuids)])
        node_of = dict(cursor.fetchall())
    unknown = uuids - node_of.keys()
    names = {hosts[u] for u in unknown if hosts.get(u)}
    by_name: dict[str, list[int]] = {}
    if names:
        rows = Node.objects.filter(name__in=names).exclude(state=NodeState.TERMINATED).values_list("name", "pk")
        for name, pk in rows:
            by_name.setdefault(name, []).append(pk)
    for uuid in sorted(unknown):
        host = hosts.get(uuid, "")
        nodes = by_name.get(host, [])
        if len(nodes) == 1:
            node_of[uuid] = nodes[0]
            continue
        if len(result.unknown_gpus) < MAX_REPORTED_GPUS:
            if not host:
                why = "not known, and the series have no Hostname or instance label"
            elif nodes:
                why = f"not known, and {len(nodes)} nodes are named {host!r}"
            else:
                why = f"not known, and no node is named {host!r}"
            result.unknown_gpus[uuid[:100]] = why
    return node_of


def write_request_store(request, *, now: datetime | None = None) -> RemoteWriteResult:
    """Store a decoded WriteRequest's dcgm-exporter samples; returns what was accepted and skipped (by reason)."""
    now = now or timezone.now()
    result = RemoteWriteResult()
    readings, counts, hosts = _readings_collect(request, result, now)
    if not readings:
        return result
    node_of = _nodes_of({uuid for _, uuid in readings}, hosts, result)
    by_slot: dict[int, dict[int, list[GpuReading]]] = {}
    for (slot, uuid), reading in readings.items():
        node_id = node_of.get(uuid)
        if node_id is None:
            result.skipped[SKIP_UNKNOWN_GPU] += counts[(slot, uuid)]
            continue
        by_slot.setdefault(slot, {}).setdefault(node_id, []).append(reading)
    samples_of = {id(readings[k]): n for k, n in counts.items()}
    seen_nodes: set[int] = set()
    with transaction.atomic():
        _gpus_lock(sorted({uuid for _, uuid in readings if uuid in node_of}))
        for slot in sorted(by_slot):
            report = PollReport(slot=datetime.fromtimestamp(slot / 1000, tz=UTC))
            accepted = {}
            for node_id, node_readings in by_slot[slot].items():
                kept = readings_accept(node_id, node_readings, report)
                accepted[node_id] = kept
                offered = sum(samples_of[id(r)] for r in node_readings)
                taken = sum(samples_of[id(r)] for r in kept)
                result.samples_accepted += taken
                if offered > taken:
                    result.skipped[SKIP_OUT_OF_RANGE] += offered - taken
            readings_store(accepted, report)
            rows = sum(len(kept) for kept in accepted.values())
            result.rows_stored += report.samples_added
            result.rows_already_stored += rows - report.samples_added
            result.gpus_created += report.gpus_created
            result.health_events += report.health_events
            result.warnings.extend(f"node {pk}: {note}" for pk, note in report.warnings.items())
            if rows:
                result.newest_sample_at = report.slot
                seen_nodes.update(pk for pk, kept in accepted.items() if kept)
        if seen_nodes:
            _nodes_seen(seen_nodes, now)
    del result.warnings[MAX_REPORTED_GPUS:]
    return result


def remote_write_receive(
    body: bytes, *, source: str, declared_length: int = 0, now: datetime | None = None
) -> RemoteWriteResult:
    """Decode, map and store one remote-write body; record the request in the source's health row.

    Raises RemoteWriteError for a body that cannot be read (recorded as a failed run first); a body whose
    declared length is over the limit is refused without being read.
    """
    try:
        limit = settings.TELEMETRY_REMOTE_WRITE_MAX_BYTES
        if declared_length > limit:
            raise RemoteWriteError(413, f"body over {limit} bytes (TELEMETRY_REMOTE_WRITE_MAX_BYTES)")
        request = body_decode(body)
    except RemoteWriteError as exc:
        source_health_record(SourceRun(kind=TelemetrySourceKind.REMOTE_WRITE, name=source, ok=False, error=exc.reason))
        raise
    result = write_request_store(request, now=now)
    # A request whose every dcgm sample was skipped is a failing source (its health row says why).
    ok = result.samples_accepted > 0 or not result.skipped
    source_health_record(
        SourceRun(
            kind=TelemetrySourceKind.REMOTE_WRITE,
            name=source,
            ok=ok,
            samples=result.samples_accepted,
            error="" if ok else result.summary(),
            newest_sample_at=result.newest_sample_at,
        ),
        now=now,
    )
    return result
