"""PromQL sources: read dcgm-exporter series from a Prometheus-compatible ``/api/v1/query_range`` into samples.

For each enabled ``PromQLSource`` one run asks the engine for every metric a scrape stores (the names of
``fleet.telemetry.exposition.FIELDS``), over the steps since ``read_until`` (at most
TELEMETRY_PROMQL_BACKFILL_S back, ending TELEMETRY_PROMQL_SETTLE_S before now), one step per
TELEMETRY_POLL_INTERVAL_S on the same grid as a scrape's slots. Each step's values go through the scrape's own
path: rendered as exposition text for ``parse_exposition``, then ``readings_accept`` and ``readings_store``,
so the GPUs, samples and health events are exactly what a scrape of the same exporter would store, and a range
read again stores nothing twice. Series map to GPUs by their ``UUID`` label; a GPU Fleetdeck does not know is
registered under the node of the source's site named by its ``Hostname`` label, or counted and skipped.

The fetch is the poller's (``fetch_many``): a total deadline per request, a size cap, redirects refused,
errors as fixed phrases. A source that fails keeps its ``read_until`` (the next run reads the range again),
counts the failure, and never stops the other sources.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from fleet.choices import TelemetrySourceKind
from fleet.models import GPU, Node, PromQLSource
from fleet.telemetry.exposition import FIELDS, GpuReading, parse_exposition
from fleet.telemetry.fetch import error_line, fetch_many
from fleet.telemetry.health import SourceRun, source_health_record
from fleet.telemetry.ingest import readings_store
from fleet.telemetry.readings import readings_accept
from fleet.telemetry.report import PollReport
from fleet.telemetry.tokens import TokenRefError, token_resolve

logger = logging.getLogger(__name__)

QUERY_PATH = "/api/v1/query_range"
METRICS = tuple(FIELDS)  # one query each: the names a scrape stores, from the scrape's own table
# Steps one run reads at most: a source catching up after an outage does so in bounded requests.
MAX_STEPS_PER_RUN = 40
FETCH_CONCURRENCY = 4
# pg_try_advisory_lock(class, source id): one run of a source at a time across all workers.
LOCK_CLASS = 0x5051  # "PQ"
LABEL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RESULT_TYPES = frozenset({"matrix", "vector", "scalar", "string"})
ERROR_TYPE_RE = re.compile(r"[a-z_]{1,32}\Z")


class PromQLError(Exception):
    """Why a source's answer is not used, in fixed words that never repeat what the engine sent."""


@dataclass(frozen=True)
class Window:
    """The steps one run reads: start..end inclusive, every ``step`` seconds (epoch seconds)."""

    start: int
    end: int
    step: int

    def steps(self) -> range:
        return range(self.start, self.end + 1, self.step)

    def on_grid(self, ts) -> bool:
        if isinstance(ts, bool) or not isinstance(ts, int | float) or ts != ts or ts in (math.inf, -math.inf):
            return False
        return ts == int(ts) and self.start <= ts <= self.end and (int(ts) - self.start) % self.step == 0


@dataclass
class PromQLReport:
    """What one run of one source did."""

    source: str
    ok: bool = False
    error: str = ""
    window: Window | None = None
    series: int = 0
    samples_added: int = 0
    gpus_created: int = 0
    health_events: int = 0
    newest_sample_at: datetime | None = None
    skipped: Counter = field(default_factory=Counter)  # reason → how many series or values

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "ok": self.ok,
            "error": self.error,
            "start": _utc(self.window.start).isoformat() if self.window else None,
            "end": _utc(self.window.end).isoformat() if self.window else None,
            "series": self.series,
            "samples_added": self.samples_added,
            "gpus_created": self.gpus_created,
            "health_events": self.health_events,
            "skipped": dict(self.skipped),
        }


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def read_window(source: PromQLSource, now: datetime) -> Window | None:
    """The steps this run reads, or None when none has settled since ``read_until``."""
    step = settings.TELEMETRY_POLL_INTERVAL_S
    now_s = int(now.timestamp())
    end = now_s - settings.TELEMETRY_PROMQL_SETTLE_S
    end -= end % step
    earliest = now_s - settings.TELEMETRY_PROMQL_BACKFILL_S
    earliest += -earliest % step
    start = earliest
    if source.read_until is not None:
        after = int(source.read_until.timestamp())
        start = max(earliest, after - after % step + step)
    end = min(end, start + (MAX_STEPS_PER_RUN - 1) * step)
    return Window(start, end, step) if start <= end else None


def query_text(metric: str, selector: str) -> str:
    """``METRIC{selector}``: the source's extra label matchers (with or without their braces)."""
    selector = selector.strip()
    if selector.startswith("{") and selector.endswith("}"):
        selector = selector[1:-1].strip()
    return f"{metric}{{{selector}}}" if selector else metric


def query_url(base_url: str, query: str, window: Window) -> str:
    """``<base>/api/v1/query_range?query=…&start=…&end=…&step=…`` (a path prefix of the base URL is kept)."""
    parts = urllib.parse.urlsplit(base_url)
    params = urllib.parse.parse_qsl(parts.query) + [
        ("query", query),
        ("start", str(window.start)),
        ("end", str(window.end)),
        ("step", str(window.step)),
    ]
    path = parts.path.rstrip("/") + QUERY_PATH
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(params), ""))


def matrix_parse(body: str) -> list:
    """The ``data.result`` list of a ``query_range`` answer; raises PromQLError if the answer is not one."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise PromQLError("answer is not JSON") from None
    if not isinstance(answer, dict):
        raise PromQLError("answer is not a Prometheus API object")
    status = answer.get("status")
    if status == "error":
        error_type = answer.get("errorType")
        kind = error_type if isinstance(error_type, str) and ERROR_TYPE_RE.match(error_type) else "unknown"
        raise PromQLError(f"query refused by the engine ({kind})")
    if status != "success":
        raise PromQLError("answer has no status 'success'")
    data = answer.get("data")
    if not isinstance(data, dict):
        raise PromQLError("answer has no data object")
    result_type = data.get("resultType")
    if result_type != "matrix":
        named = result_type if isinstance(result_type, str) and result_type in RESULT_TYPES else "something else"
        raise PromQLError(f"expected a matrix result, got {named}")
    result = data.get("result")
    if not isinstance(result, list):
        raise PromQLError("matrix result is not a list")
    return result


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_lines(metric: str, result: list, window: Window, report: PromQLReport, lines: dict[int, list[str]]):
    """Add each good value of a matrix as an exposition line under its step; count and skip the bad ones."""
    for series in result:
        labels = series.get("metric") if isinstance(series, dict) else None
        values = series.get("values") if isinstance(series, dict) else None
        if not isinstance(labels, dict) or not isinstance(values, list):
            report.skipped["malformed series"] += 1
            continue
        if not all(
            isinstance(k, str) and LABEL_NAME_RE.match(k) and isinstance(v, str) and "\x00" not in v
            for k, v in labels.items()
        ):
            report.skipped["malformed labels"] += 1
            continue
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items() if k != "__name__")
        report.series += 1
        for point in values:
            if not isinstance(point, list) or len(point) != 2:
                report.skipped["malformed value"] += 1
                continue
            ts, raw = point
            if not isinstance(raw, str):
                report.skipped["value is not a number"] += 1
                continue
            try:
                value = float(raw)
            except ValueError:
                report.skipped["value is not a number"] += 1
                continue
            if math.isnan(value) or math.isinf(value):
                report.skipped["NaN or Inf value"] += 1
                continue
            if not window.on_grid(ts):
                report.skipped["timestamp off the step grid"] += 1
                continue
            lines.setdefault(int(ts), []).append(f"{metric}{{{label_text}}} {value!r}")


def _fetch_lines(source: PromQLSource, token: str | None, window: Window, report: PromQLReport):
    """Ask for every metric; raises PromQLError at the first that fails (then nothing of the run is stored)."""
    queries = [query_url(source.url, query_text(metric, source.selector), window) for metric in METRICS]
    results = fetch_many(
        [(i, url, token) for i, url in enumerate(queries)],
        timeout_s=settings.TELEMETRY_POLL_TIMEOUT_S,
        concurrency=FETCH_CONCURRENCY,
        poll_deadline=time.monotonic() + settings.TELEMETRY_POLL_DEADLINE_S,
    )
    lines: dict[int, list[str]] = {}
    for result in results:
        metric = METRICS[result.node_id]
        if result.skipped:
            raise PromQLError(f"{metric}: not read within the source's deadline")
        if result.body is None:
            raise PromQLError(f"{metric}: {result.error}")
        try:
            matrix = matrix_parse(result.body)
        except PromQLError as exc:
            raise PromQLError(f"{metric}: {exc}") from None
        series_lines(metric, matrix, window, report, lines)
    return lines


def _readings_by_node(source: PromQLSource, steps: dict[int, list[GpuReading]], report: PromQLReport):
    """Per step: the readings grouped by the node they belong to (known GPU's node, else by Hostname)."""
    uuids = {r.uuid for readings in steps.values() for r in readings if r.uuid}
    known = dict(GPU.objects.filter(uuid__in=uuids).values_list("uuid", "node_id"))
    hostnames = {r.hostname for readings in steps.values() for r in readings if r.hostname}
    nodes = dict(Node.objects.filter(site_id=source.site_id, name__in=hostnames).values_list("name", "pk"))
    grouped: dict[int, dict[int, list[GpuReading]]] = {}
    for ts, readings in steps.items():
        by_node: dict[int, list[GpuReading]] = {}
        for reading in readings:
            node_id = known.get(reading.uuid) if reading.uuid else None
            if node_id is None:
                node_id = nodes.get(reading.hostname)
            if node_id is None:
                report.skipped["GPU unknown and no node of the site is named by its Hostname label"] += 1
                continue
            by_node.setdefault(node_id, []).append(reading)
        grouped[ts] = by_node
    return grouped


def _store(source: PromQLSource, lines: dict[int, list[str]], report: PromQLReport) -> None:
    steps: dict[int, list[GpuReading]] = {}
    for ts, step_lines in lines.items():
        parsed = parse_exposition("\n".join(step_lines))
        if parsed.malformed:
            report.skipped["series without a usable UUID or gpu label"] += parsed.malformed
        steps[ts] = list(parsed.readings.values())
    seen_nodes: dict[int, int] = {}
    for ts, by_node in sorted(_readings_by_node(source, steps, report).items()):
        poll = PollReport(slot=_utc(ts))
        accepted = {node_id: readings_accept(node_id, readings, poll) for node_id, readings in by_node.items()}
        readings_store(accepted, poll)
        report.samples_added += poll.samples_added
        report.gpus_created += poll.gpus_created
        report.health_events += poll.health_events
        if poll.samples_rejected:
            report.skipped["values out of range"] += poll.samples_rejected
        if poll.gpus_seen:
            report.newest_sample_at = poll.slot
            seen_nodes.update(dict.fromkeys(accepted, ts))
    for node_id, ts in seen_nodes.items():
        # The engine heard from these nodes: they are seen, as a scrape would mark them.
        Node.objects.filter(Q(last_seen__isnull=True) | Q(last_seen__lt=_utc(ts)), pk=node_id).update(
            last_seen=_utc(ts)
        )


def promql_source_read(source: PromQLSource, *, now: datetime | None = None) -> PromQLReport:
    """Read one source's new steps and store them; record the run on the source and in its health row."""
    now = now or timezone.now()
    report = PromQLReport(source=source.name, window=read_window(source, now))
    try:
        if report.window is not None:
            token = token_resolve(source.token_ref)
            lines = _fetch_lines(source, token, report.window, report)
            _store(source, lines, report)
        report.ok = True
    except (PromQLError, TokenRefError) as exc:
        report.error = error_line(str(exc))
    except Exception as exc:  # whatever fails stays this source's: the others are still read
        logger.exception("PromQL source %s failed", source.pk)
        report.error = f"read failed ({type(exc).__name__})"
    _record(source, report, now)
    return report


def _record(source: PromQLSource, report: PromQLReport, now: datetime) -> None:
    rows = PromQLSource.objects.filter(pk=source.pk)
    if report.ok:
        changes = {"last_success_at": now, "last_error": "", "consecutive_failures": 0}
        if report.window is not None:
            changes["read_until"] = _utc(report.window.end)
        rows.update(**changes)
    else:
        rows.update(last_error=report.error[:300], consecutive_failures=F("consecutive_failures") + 1)
    source.refresh_from_db(fields=["read_until", "last_success_at", "last_error", "consecutive_failures"])
    source_health_record(
        SourceRun(
            kind=TelemetrySourceKind.PROMQL,
            name=source.name,
            ok=report.ok,
            samples=report.samples_added,
            error=report.error,
            newest_sample_at=report.newest_sample_at,
        ),
        now=now,
    )


def promql_read_all(*, now: datetime | None = None) -> list[PromQLReport]:
    """Read every enabled source once; a source another worker is reading right now is left to it."""
    reports = []
    for source in PromQLSource.objects.filter(enabled=True).order_by("pk"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, source.pk])
            if not cursor.fetchone()[0]:
                logger.info("PromQL source %s is being read by another worker; skipped", source.pk)
                continue
            try:
                reports.append(promql_source_read(source, now=now))
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, source.pk])
    return reports


__all__ = ["PromQLError", "PromQLReport", "Window", "promql_read_all", "promql_source_read", "read_window"]
