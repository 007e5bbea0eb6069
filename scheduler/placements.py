"""Placement runs: place pending jobs together and save what was chosen; what-if pricing; re-queue from lost nodes.

``jobs_place`` decides every pending job as one batch (``scheduler.optimizer.place_batch`` over
``scheduler.inputs.fleet_inputs``) and writes placements, planned egress and launch calls; it returns a report
that says which launches the caller (``scheduler.tasks``) enqueues. Nothing here calls a cloud or enqueues a task.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing.choices import EgressCause
from billing.models import EgressRecord
from billing.rates import EgressRateMissing, location_class
from fleet.choices import NodeLifecycle, NodeState, ProviderKind
from scheduler import quotas
from scheduler.choices import JobState, LaunchStatus, TargetKind
from scheduler.datasets import TariffNetwork
from scheduler.inputs import FleetInputs, dataset_ins, fleet_inputs, job_in
from scheduler.jobs import job_fields, placements_requeue
from scheduler.launch import launch_providers, placement_launch_prepare
from scheduler.models import Dataset, Job, Placement
from scheduler.optimizer import POLICY_VERSION, DatasetIn, candidates_for, place_batch
from scheduler.serializers import breakdown, candidate_dict

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key: one placement run at a time, so two runs never book the same free GPUs; a run
# that finds another in progress is skipped (the other run, or the next beat run, places what it left).
PLACE_LOCK_KEY = 0x46_44_50_4C_41_43_45  # "FDPLACE"
PLACE_SKIPPED = "another placement run is in progress"
# Node states in which placed (not yet running) jobs are sent back to the queue: at once when the inventory says
# the node is gone, after SCHEDULER_REQUEUE_GRACE_S without a successful poll when its telemetry is unreachable.
GONE_NODE_STATES = (NodeState.STOPPED, NodeState.TERMINATED)
REQUEUE_UNREACHABLE_REASON = "Re-queued: its node became unreachable."


@dataclass
class PlaceReport:
    """What one placement run did."""

    placed: list[int] = field(default_factory=list)
    unplaced: dict[int, str] = field(default_factory=dict)
    launches: int = 0
    method: str = "auto"
    skipped: str = ""  # why the run did nothing (another run held the placement lock); empty when it ran
    reclaimed: list[int] = field(default_factory=list)  # jobs re-queued to give borrowed GPUs back (quotas)
    # Offer placements whose live launch the caller enqueues (launch status "none": live mode); not in as_dict.
    launch_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The report as JSON-able data."""
        return {
            "placed": self.placed,
            "unplaced": {str(k): v for k, v in self.unplaced.items()},
            "launches": self.launches,
            "method": self.method,
            "skipped": self.skipped,
            "reclaimed": self.reclaimed,
        }


def _placement_build(*, job: Job, decision, inputs: FleetInputs, job_datasets: list[DatasetIn], now) -> Placement:
    chosen = decision.chosen
    alternatives = []
    for candidate in decision.alternatives:
        row = candidate_dict(candidate, datasets={d.id: d for d in job_datasets})
        if candidate.node_id in inputs.energy_basis:
            row["energy_basis"] = inputs.energy_basis[candidate.node_id]
        alternatives.append(row)
    common = {
        "job": job,
        "active": True,
        "gpu_count": chosen.gpus,
        "instance_count": chosen.instance_count,
        "usd_per_h": chosen.usd_per_h,
        "compute_usd": chosen.compute_usd,
        "egress_usd": chosen.egress_usd,
        "total_usd": chosen.total_usd,
        "transfer_s": round(chosen.transfer_s),
        "breakdown": breakdown(chosen, job_datasets),
        "alternatives": alternatives,
        "policy_version": POLICY_VERSION,
    }
    if chosen.kind == TargetKind.NODE:
        node = inputs.node_rows[chosen.node_id]
        return Placement(
            **common,
            target_kind=TargetKind.NODE,
            node=node,
            site=node.site,
            provider_kind=node.site.provider.kind,
            # the region allowed_regions matches: the site name on-prem (as the optimiser's NodeIn.region)
            region=node.site.name if node.site.provider.kind == ProviderKind.ONPREM else node.site.region,
            instance_type=node.instance_type,
            spot=node.lifecycle == NodeLifecycle.SPOT,
        )
    offer = chosen.offer
    return Placement(
        **common,
        target_kind=TargetKind.OFFER,
        provider_kind=offer.provider_kind,
        region=offer.region,
        instance_type=offer.instance_type,
        spot=offer.spot,
    )


def _egress_planned(*, placement: Placement, job: Job, chosen, network: TariffNetwork, now) -> list[EgressRecord]:
    records = []
    for move in chosen.moves:
        src, dst = network.location(move.source), network.location(move.destination)
        records.append(
            EgressRecord(
                occurred_at=now,
                source=move.source,
                destination=move.destination,
                source_provider_kind=src.provider_kind,
                location_class=str(location_class(src, dst)),
                bytes=move.size_bytes,
                usd=move.usd,
                cause=EgressCause.PLACEMENT,
                planned=True,
                team_id=job.team_id,
                project_id=job.project_id,
                placement=placement,
                dataset_id=move.dataset_id,
            )
        )
    return records


def jobs_place(*, job_ids: list[int] | None = None, now: datetime | None = None, method: str = "auto") -> PlaceReport:
    """Place every pending job (or those of ``job_ids``) together: write placements, planned egress, launches.

    Runs under a transaction-level advisory lock taken without waiting: while another run holds it, this one does
    nothing and its report says so (``skipped``), so runs never queue up behind each other on workers; the run in
    progress, or the next one (beat runs every minute), places what is pending. Jobs are decided as one batch, so
    existing free GPUs go where they save the most overall. A candidate whose data moves cannot be priced (no
    egress rate) is left out for that job only.
    """
    now = now or timezone.now()
    report = PlaceReport(method=method)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [PLACE_LOCK_KEY])
            (locked,) = cursor.fetchone()
        if not locked:
            report.skipped = PLACE_SKIPPED
            logger.info("placement run skipped: %s", PLACE_SKIPPED)
            return report
        _place_pending(report=report, job_ids=job_ids, now=now, method=method, reclaim=True)
    logger.info("placed %d jobs, %d unplaced", len(report.placed), len(report.unplaced))
    return report


def _place_pending(*, report: PlaceReport, job_ids: list[int] | None, now, method: str, reclaim: bool) -> None:
    """The body of a placement run, under its lock: decide the pending jobs and write what was chosen into the
    database and ``report``. With quotas, first reclaims borrowed GPUs for jobs within their guarantee when that
    lets them fit (``scheduler.quotas``), then decides again once (``reclaim`` False)."""
    pending = (
        Job.objects.filter(state=JobState.PENDING)
        .select_related("team", "project")
        .select_for_update(skip_locked=True, of=("self",))
    )
    if job_ids is not None:
        pending = pending.filter(pk__in=job_ids)
    jobs = list(pending.order_by("pk"))
    if not jobs:
        return
    links = Job.datasets.through.objects.filter(job_id__in=[j.pk for j in jobs]).values_list("job_id", "dataset_id")
    job_dataset_ids: dict[int, list[int]] = defaultdict(list)
    for job_id, dataset_id in links:
        job_dataset_ids[job_id].append(dataset_id)
    wanted = {pk for ids in job_dataset_ids.values() for pk in ids}
    datasets, locations = dataset_ins(Dataset.objects.filter(pk__in=wanted).select_related("site__provider"))
    providers = launch_providers()
    inputs = fleet_inputs(now=now, extra_locations=locations, providers=providers, unpriceable_infeasible=True)
    job_inputs = [job_in(job, tuple(sorted(job_dataset_ids[job.pk]))) for job in jobs]
    usage = quotas.usage_load(node_models={n.id: n.gpu_model for n in inputs.priced_nodes.values()})
    preemptible: set[int] = set()
    if not usage.quotas:  # no quota anywhere: the whole batch at once, as before quotas
        result = place_batch(
            job_inputs,
            nodes=inputs.nodes,
            offers=inputs.offers,
            datasets=datasets,
            network=inputs.network,
            method=method,
        )
    else:
        team_of = {job.pk: job.team_id for job in jobs}
        plan = quotas.quota_place_batch(
            job_inputs, team_of=team_of, usage=usage, inputs=inputs, datasets=datasets, method=method
        )
        if reclaim:
            names = {job.team_id: job.team.name for job in jobs}
            victims = quotas.reclaim_victims(
                plan, team_of=team_of, team_names=names, usage=usage, inputs=inputs, datasets=datasets
            )
            if victims and _reclaim(victims, report=report):
                again = None if job_ids is None else sorted(set(job_ids) | set(report.reclaimed))
                _place_pending(report=report, job_ids=again, now=now, method=method, reclaim=False)
                return
        result, preemptible = plan.result, plan.preemptible
    by_id = {job.pk: job for job in jobs}
    placements, decisions = [], []
    for job_id, decision in sorted(result.decisions.items()):
        job = by_id[job_id]
        job_datasets = [datasets[pk] for pk in sorted(job_dataset_ids[job_id]) if pk in datasets]
        placement = _placement_build(job=job, decision=decision, inputs=inputs, job_datasets=job_datasets, now=now)
        placement.preemptible = job_id in preemptible
        placements.append(placement)
        decisions.append(decision)
        job.state, job.pending_reason = JobState.PLACED, ""
    Placement.objects.bulk_create(placements)
    # The launch call carries an idempotency token derived from the placement's id, so it is built once saved.
    offers = [p for p in placements if p.target_kind == TargetKind.OFFER]
    for placement in offers:
        placement_launch_prepare(placement=placement, providers=providers)
    if offers:
        Placement.objects.bulk_update(offers, ["launch_request", "launch_status"])
    records = []
    for placement, decision in zip(placements, decisions, strict=True):
        records += _egress_planned(
            placement=placement, job=placement.job, chosen=decision.chosen, network=inputs.network, now=now
        )
    EgressRecord.objects.bulk_create(records)
    for job_id, reason in result.unplaced.items():
        job = by_id[job_id]
        if job_id in report.reclaimed:  # re-queued by this run's reclaim: why it lost its GPUs, then why it waits
            reason = f"{job.pending_reason} {reason[:1].upper()}{reason[1:]}"
        job.pending_reason = reason[:500]
    Job.objects.bulk_update(jobs, ["state", "pending_reason"])
    report.placed = sorted(result.decisions)
    report.unplaced = dict(sorted(result.unplaced.items()))
    report.launches = len(offers)
    report.launch_ids = [p.pk for p in offers if p.launch_status == LaunchStatus.NONE]


def _reclaim(victims: dict[int, str], *, report: PlaceReport) -> int:
    """Re-queue the reclaimed placements (their jobs' rows locked first, still placed); returns how many went."""
    placements = dict(
        Placement.objects.filter(pk__in=list(victims), active=True).values_list("pk", "job_id").order_by("pk")
    )
    locked = set(
        Job.objects.select_for_update()
        .filter(pk__in=list(placements.values()), state=JobState.PLACED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    by_reason: dict[str, list[int]] = defaultdict(list)
    for placement_id, job_id in placements.items():
        if job_id in locked:
            by_reason[victims[placement_id]].append(placement_id)
    moved = sum(placements_requeue(placement_ids=ids, reason=reason) for reason, ids in by_reason.items())
    report.reclaimed = sorted(job_id for job_id in placements.values() if job_id in locked)
    if moved:
        logger.info("reclaimed borrowed GPUs: re-queued jobs %s", report.reclaimed)
    return moved


def job_what_if(*, data: dict, now: datetime | None = None) -> tuple[list, dict[int, DatasetIn]]:
    """Every feasible candidate for a would-be job (validated data, not saved), ranked, and its datasets.

    Raises ValidationError on ``datasets`` when no egress rate covers a move (the prices are not loaded).
    """
    now = now or timezone.now()
    job = Job(**{k: v for k, v in job_fields(data).items() if k not in ("team", "project")})
    chosen = list(data.get("datasets") or [])
    datasets, locations = dataset_ins(chosen)
    inputs = fleet_inputs(now=now, extra_locations=locations)
    try:
        candidates = candidates_for(
            job_in(job, tuple(sorted(datasets))),
            nodes=inputs.nodes,
            offers=inputs.offers,
            datasets=datasets,
            network=inputs.network,
        )
    except EgressRateMissing as exc:
        raise ValidationError({"datasets": f"Cannot price moving these datasets: {exc}"}) from exc
    return candidates, datasets


def node_lost_q(*, now: datetime) -> Q:
    """Placements on nodes whose placed jobs go back to the queue: stopped or terminated nodes, and unreachable
    ones whose last successful poll is older than SCHEDULER_REQUEUE_GRACE_S (or that were never seen)."""
    unseen_since = now - timedelta(seconds=settings.SCHEDULER_REQUEUE_GRACE_S)
    return Q(node__state__in=GONE_NODE_STATES) | (
        Q(node__state=NodeState.UNREACHABLE) & (Q(node__last_seen__isnull=True) | Q(node__last_seen__lt=unseen_since))
    )


@transaction.atomic
def jobs_requeue_unreachable(*, now: datetime | None = None) -> list[int]:
    """Send placed jobs on nodes that became unreachable (or stopped, or terminated) back to the queue.

    An unreachable node's jobs move only once its last successful poll is older than SCHEDULER_REQUEUE_GRACE_S,
    so a short monitoring blip leaves them where they are (node_lost_q). Only jobs that have not started: a
    running job may still be running on a node whose telemetry is merely unreachable, and automation reports
    its end. The jobs' rows are locked first (as job_transition locks them) and the state re-checked, so a job
    that just became running or cancelled is left alone. The old placement goes inactive and its planned egress
    records are deleted (``scheduler.jobs.placements_requeue``, the one re-queue rule). Returns the re-queued job
    ids; the caller queues a placement run for them.
    """
    lost_node = node_lost_q(now=now or timezone.now())
    lost = Placement.objects.filter(lost_node, active=True).values("job_id")
    job_ids = list(
        Job.objects.select_for_update()
        .filter(state=JobState.PLACED, pk__in=lost)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not job_ids:
        return []
    placements = list(
        Placement.objects.select_for_update(of=("self",))
        .filter(lost_node, active=True, job_id__in=job_ids)
        .order_by("pk")
    )
    placements_requeue(placement_ids=[p.pk for p in placements], reason=REQUEUE_UNREACHABLE_REASON)
    return job_ids
