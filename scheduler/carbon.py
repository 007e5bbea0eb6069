"""A job's footprint: kgCO2e, energy and $ of the ledger hours its placements used (a read for the job page and API).

Placements record when they were made (``created``), not when they stopped, so each placement's span is derived:

- it ends when the job's next placement was made, or when the job ended (``ended_at``), or now;
- a **node** placement (free GPUs on an existing node) counts from when the job started running (``started_at``):
  before that the GPUs waited for it but did its work for no one. Its share of each node-hour is its GPUs of the
  node's GPUs (``Placement.gpu_count`` / the hour's ``LedgerEntry.gpu_count``, at most 1);
- an **offer** placement (cloud instances launched for the job) counts from when it was made (the launch): the
  instances are the job's whole, so every node tagged with the job (``fleetdeck:job`` / ``fleetdeck-job``, as
  launched) counts in full while the span lasts.

A running job is never moved (only placed jobs are re-queued), so a node placement that never ran counts nothing.
Each ledger hour (``billing.LedgerEntry``) of those nodes counts by its overlap with the span: the seconds of the
hour inside the span, at most the node's active seconds, over the node's active seconds. The figures are the
hour's compute $, energy $, kWh and co2e_kg × that overlap × the GPU share; an hour whose co2e_kg is empty (no
intensity known for its site) adds no carbon and is counted in ``hours_without_carbon``. GPU slices
(``billing.LedgerShare``) are not looked at: a sliced node's hour is shared by GPU count like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from fleet.models import Node
from scheduler.choices import TargetKind
from scheduler.launch import GCE_JOB_LABEL, JOB_TAG
from scheduler.models import Job, Placement

SIX_PLACES = Decimal("0.000001")
ZERO = Decimal(0)

FOOTPRINT_SQL = """
WITH spans AS (
    SELECT * FROM unnest(%(node_ids)s::bigint[], %(starts)s::timestamptz[], %(ends)s::timestamptz[],
                         %(gpus)s::int[]) AS s(node_id, start_at, end_at, gpus)
),
counted AS (
    SELECT e.compute_usd, e.energy_usd, e.energy_kwh, e.co2e_kg, e.gpu_hours,
           CASE WHEN e.active_s > 0 THEN LEAST(o.overlap_s, e.active_s) / e.active_s ELSE 0 END
           * CASE WHEN s.gpus IS NULL OR e.gpu_count = 0 THEN 1 ELSE LEAST(s.gpus::numeric / e.gpu_count, 1) END
               AS share
    FROM spans s
    JOIN billing_ledgerentry e
      ON e.node_id = s.node_id AND e.hour >= date_trunc('hour', s.start_at) AND e.hour < s.end_at
    CROSS JOIN LATERAL (
        SELECT GREATEST(extract(epoch FROM LEAST(e.hour + interval '1 hour', s.end_at)
                                         - GREATEST(e.hour, s.start_at)), 0)::numeric AS overlap_s
    ) o
)
SELECT COALESCE(sum(compute_usd * share), 0), COALESCE(sum(energy_usd * share), 0),
       COALESCE(sum(energy_kwh * share), 0), sum(co2e_kg * share), COALESCE(sum(gpu_hours * share), 0),
       count(*) FILTER (WHERE share > 0), count(*) FILTER (WHERE share > 0 AND co2e_kg IS NULL)
FROM counted
"""


@dataclass(frozen=True)
class Span:
    """One placement's counted span: which nodes, from when to when, and the GPUs it held on a shared node."""

    placement_id: int
    start: datetime
    end: datetime
    node_ids: tuple[int, ...]
    gpus: int | None  # None: the nodes are the job's whole (an offer's instances)


@dataclass(frozen=True)
class JobFootprint:
    """What a job's GPU time cost and emitted, from the ledger (6 decimals; co2e_kg None when no hour had it)."""

    compute_usd: Decimal = ZERO
    energy_usd: Decimal = ZERO
    energy_kwh: Decimal = ZERO
    co2e_kg: Decimal | None = None
    gpu_hours: Decimal = ZERO
    ledger_hours: int = 0
    hours_without_carbon: int = 0
    spans: list[Span] = field(default_factory=list)

    @property
    def total_usd(self) -> Decimal:
        return self.compute_usd + self.energy_usd

    @property
    def carbon_complete(self) -> bool:
        """Whether every counted hour had a carbon figure."""
        return self.hours_without_carbon == 0


def _launched_node_ids(job: Job) -> tuple[int, ...]:
    tag = str(job.pk)
    query = Node.objects.filter(Q(labels__contains={JOB_TAG: tag}) | Q(labels__contains={GCE_JOB_LABEL: tag}))
    return tuple(query.order_by("pk").values_list("pk", flat=True))


def job_spans(*, job: Job, now: datetime | None = None) -> list[Span]:
    """The counted span of each of ``job``'s placements (module docstring), oldest first; empty ones left out."""
    job_end = job.ended_at or now or timezone.now()
    placements = list(Placement.objects.filter(job=job).order_by("created", "pk"))
    launched: tuple[int, ...] | None = None
    spans = []
    for index, placement in enumerate(placements):
        end = job_end
        if index + 1 < len(placements):
            end = min(end, placements[index + 1].created)
        if placement.target_kind == TargetKind.NODE:
            if placement.node_id is None or job.started_at is None:
                continue
            start, node_ids, gpus = max(placement.created, job.started_at), (placement.node_id,), placement.gpu_count
        else:
            launched = _launched_node_ids(job) if launched is None else launched
            start, node_ids, gpus = placement.created, launched, None
        if node_ids and start < end:
            spans.append(Span(placement_id=placement.pk, start=start, end=end, node_ids=node_ids, gpus=gpus))
    return spans


def job_footprint(*, job: Job, now: datetime | None = None) -> JobFootprint:
    """kgCO2e, kWh, GPU-hours and $ of ``job``'s share of the ledger hours its placements used: one query for the
    placements, one for the nodes launched for it (offers only) and one summing the ledger."""
    spans = job_spans(job=job, now=now)
    rows = [(node_id, span) for span in spans for node_id in span.node_ids]
    if not rows:
        return JobFootprint(spans=spans)
    params = {
        "node_ids": [node_id for node_id, _ in rows],
        "starts": [span.start for _, span in rows],
        "ends": [span.end for _, span in rows],
        "gpus": [span.gpus for _, span in rows],
    }
    with connection.cursor() as cursor:
        cursor.execute(FOOTPRINT_SQL, params)
        compute, energy_usd, kwh, co2e, gpu_hours, hours, without = cursor.fetchone()

    def six(value: Decimal) -> Decimal:
        return Decimal(value).quantize(SIX_PLACES)

    return JobFootprint(
        compute_usd=six(compute),
        energy_usd=six(energy_usd),
        energy_kwh=six(kwh),
        co2e_kg=None if co2e is None else six(co2e),
        gpu_hours=six(gpu_hours),
        ledger_hours=hours,
        hours_without_carbon=without,
        spans=spans,
    )
