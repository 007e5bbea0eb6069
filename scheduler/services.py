"""Writes of the scheduler: submit a job, place pending jobs, move jobs through their states, re-queue."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.choices import EgressCause
from billing.models import EgressRecord
from billing.rates import (
    EgressRateMissing,
    EgressTariff,
    Location,
    PriceBook,
    energy_usd_per_kwh,
    location_class,
    onprem_rates,
)
from fleet.catalog import GPU_SPECS, gpu_key
from fleet.choices import NodeLifecycle, NodeState, ProviderKind
from fleet.models import Node, Provider
from scheduler.choices import ACTIVE_JOB_STATES, ENDED_JOB_STATES, JobState, TargetKind
from scheduler.datasets import TariffNetwork, dataset_location
from scheduler.models import Dataset, Job, Placement
from scheduler.optimizer import POLICY_VERSION, DatasetIn, JobIn, NodeIn, OfferIn, candidates_for, place_batch

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key: one placement run at a time, so two runs never book the same free GPUs; a run
# that finds another in progress is skipped (the other run, or the next beat run, places what it left).
PLACE_LOCK_KEY = 0x46_44_50_4C_41_43_45  # "FDPLACE"
# A node whose telemetry was last seen longer ago than this is not offered (it may be gone).
NODE_SEEN_WITHIN = timedelta(minutes=15)
# Without measured power, a GPU is assumed to draw this share of its power limit while it works.
POWER_LIMIT_SHARE = Decimal("0.7")
POWER_WINDOW = timedelta(days=1)
# Node states in which placed (not yet running) jobs are sent back to the queue: at once when the inventory says
# the node is gone, after SCHEDULER_REQUEUE_GRACE_S without a successful poll when its telemetry is unreachable.
GONE_NODE_STATES = (NodeState.STOPPED, NodeState.TERMINATED)
PLACE_SKIPPED = "another placement run is in progress"

TRANSITIONS: dict[str, tuple[str, ...]] = {
    JobState.PENDING: (JobState.CANCELLED,),
    JobState.PLACED: (JobState.RUNNING, JobState.FAILED, JobState.CANCELLED),
    JobState.RUNNING: (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED),
}


class TransitionError(Exception):
    """A job state change that its current state does not allow."""


@dataclass
class PlaceReport:
    """What one placement run did."""

    placed: list[int] = field(default_factory=list)
    unplaced: dict[int, str] = field(default_factory=dict)
    launches: int = 0
    method: str = "auto"
    skipped: str = ""  # why the run did nothing (another run held the placement lock); empty when it ran

    def as_dict(self) -> dict:
        """The report as JSON-able data."""
        return {
            "placed": self.placed,
            "unplaced": {str(k): v for k, v in self.unplaced.items()},
            "launches": self.launches,
            "method": self.method,
            "skipped": self.skipped,
        }


@dataclass
class FleetInputs:
    """Everything the optimiser needs from the database, loaded in a fixed number of queries."""

    nodes: list[NodeIn]
    offers: list[OfferIn]
    network: TariffNetwork
    node_rows: dict[int, Node]
    energy_basis: dict[int, str]  # node id -> "measured" or "estimated": where the energy $/GPU-h came from


# What a submission sets (datasets aside, a many-to-many); all of it but the team can change while pending.
JOB_INPUT_FIELDS = (
    "name",
    "team",
    "project",
    "gpu_count",
    "gpu_model",
    "min_gpu_memory_mib",
    "expected_hours",
    "priority",
    "max_usd_per_h",
    "spot_allowed",
    "allowed_providers",
    "allowed_regions",
)
JOB_EDITABLE_FIELDS = tuple(name for name in JOB_INPUT_FIELDS if name != "team")


def _job_fields(data: dict) -> dict:
    return {name: data[name] for name in JOB_INPUT_FIELDS if name in data}


@transaction.atomic
def job_submit(*, data: dict, user=None) -> Job:
    """Create a pending job from validated data (``datasets``: Dataset objects) and queue a placement run."""
    from scheduler.tasks import jobs_place as jobs_place_task

    job = Job.objects.create(
        **_job_fields(data), submitted_by=user if user and user.is_authenticated else None, state=JobState.PENDING
    )
    job.datasets.set(data.get("datasets") or [])
    transaction.on_commit(partial(jobs_place_task.delay))
    return job


@transaction.atomic
def job_update(*, job: Job, data: dict) -> Job:
    """Change a pending job's request (validated data); raise TransitionError once it is placed."""
    from scheduler.tasks import jobs_place as jobs_place_task

    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.state != JobState.PENDING:
        raise TransitionError(f"A {job.state} job cannot be edited; only pending jobs can.")
    fields = [name for name in JOB_EDITABLE_FIELDS if name in data]
    for name in fields:
        setattr(job, name, data[name])
    if fields:
        job.save(update_fields=fields)
    if "datasets" in data:
        job.datasets.set(data["datasets"])
    transaction.on_commit(partial(jobs_place_task.delay))
    return job


def job_in(job: Job, dataset_ids: tuple[int, ...]) -> JobIn:
    """The optimiser's view of a job."""
    return JobIn(
        id=job.pk or 0,
        name=job.name,
        gpu_count=job.gpu_count,
        gpu_model=job.gpu_model or None,
        min_gpu_memory_mib=job.min_gpu_memory_mib,
        expected_hours=Decimal(job.expected_hours),
        dataset_ids=dataset_ids,
        priority=job.priority,
        max_usd_per_h=Decimal(job.max_usd_per_h) if job.max_usd_per_h is not None else None,
        spot_allowed=job.spot_allowed,
        allowed_providers=frozenset(job.allowed_providers or ()),
        allowed_regions=frozenset(job.allowed_regions or ()),
        order=job.pk or 0,
    )


def dataset_ins(datasets) -> tuple[dict[int, DatasetIn], dict[str, Location]]:
    """Datasets as the optimiser sees them, and the Locations of their keys (sites select_related)."""
    ins, locations = {}, {}
    for dataset in datasets:
        location = dataset_location(dataset)
        locations[location.key] = location
        ins[dataset.pk] = DatasetIn(
            id=dataset.pk, name=dataset.name, size_bytes=dataset.size_bytes, location=location.key
        )
    return ins, locations


def _node_power_w(node_ids: list[int], since: datetime) -> dict[int, float]:
    """Average measured power per GPU of each node over the window (fleet_gpu_hour), where there is any."""
    if not node_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT g.node_id, AVG(h.power_avg_w) FROM fleet_gpu_hour h JOIN fleet_gpu g ON g.id = h.gpu_id "
            "WHERE h.hour >= %s AND g.node_id = ANY(%s) AND NOT g.lost AND h.power_avg_w IS NOT NULL "
            "GROUP BY g.node_id",
            [since, node_ids],
        )
        return {node_id: float(watts) for node_id, watts in cursor.fetchall()}


def _launched_for_live_jobs_drop(rows: list[Node]) -> list[Node]:
    """Nodes without those launched for a job that is still placed or running (their GPUs are that job's)."""
    from scheduler.launch import GCE_JOB_LABEL, JOB_TAG

    owners = {}
    for node in rows:
        value = (node.labels or {}).get(JOB_TAG) or (node.labels or {}).get(GCE_JOB_LABEL)
        if value and str(value).isdigit():
            owners[node.pk] = int(value)
    if not owners:
        return rows
    live = set(
        Job.objects.filter(pk__in=set(owners.values()), state__in=ACTIVE_JOB_STATES).values_list("pk", flat=True)
    )
    return [node for node in rows if owners.get(node.pk) not in live]


def node_gpu_memory_mib(gpu_name: str | None, measured_mib: int | None) -> int | None:
    """A node's GPU memory on the catalogue's scale (H100: 81920 MiB, as offers have it), not NVML's (81559 MiB);
    the measured figure only for a model the catalogue does not know."""
    spec = GPU_SPECS.get(gpu_key(gpu_name)) if gpu_name else None
    return spec.memory_mib if spec is not None else measured_mib


def fleet_inputs(
    *,
    now: datetime,
    extra_locations: dict[str, Location] | None = None,
    providers: dict[str, Provider] | None = None,
    unpriceable_infeasible: bool = False,
) -> FleetInputs:
    """Free GPUs on usable nodes with their $/GPU-h, the cloud offers of enabled providers, and the network.

    ``providers``: launch_providers(), when the caller already has them. ``unpriceable_infeasible``: the network
    reports a move without an egress rate as infeasible for that candidate (placement) instead of raising
    EgressRateMissing (what-if).
    """
    day = now.date()
    busy = (
        Placement.objects.filter(node=OuterRef("pk"), active=True, job__state__in=ACTIVE_JOB_STATES)
        .values("node")
        .annotate(total=Sum("gpu_count"))
        .values("total")
    )
    rows = list(
        Node.objects.filter(state=NodeState.RUNNING, ended_at__isnull=True)
        .filter(Q(last_seen__isnull=True) | Q(last_seen__gte=now - NODE_SEEN_WITHIN))
        .select_related("site__provider")
        .annotate(
            gpu_total=Count("gpus"),
            usable=Count("gpus", filter=Q(gpus__lost=False)),
            gpu_name=Min("gpus__model", filter=Q(gpus__lost=False)),
            memory_mib=Min("gpus__memory_mib", filter=Q(gpus__lost=False)),
            power_limit_w=Min("gpus__power_limit_w", filter=Q(gpus__lost=False)),
            busy=Coalesce(Subquery(busy), Value(0)),
        )
        .filter(usable__gt=0)
        .order_by("pk")
    )
    rows = _launched_for_live_jobs_drop(rows)
    book = PriceBook.load(day=day)
    owned = [n for n in rows if n.site.provider.kind == ProviderKind.ONPREM]
    amortised = onprem_rates(nodes=owned, day=day) if owned else {}
    power = _node_power_w([n.pk for n in owned], now - POWER_WINDOW)
    locations: dict[str, Location] = dict(extra_locations or {})
    nodes, energy_basis = [], {}
    for node in rows:
        kind = node.site.provider.kind
        location = Location.from_site(node.site)
        locations[location.key] = location
        if kind == ProviderKind.ONPREM:
            base = amortised.get(node.pk)
            if base is None:
                continue  # no cost model: its cost is unknown, so it cannot be compared
            if node.pk in power:
                watts, energy_basis[node.pk] = Decimal(str(power[node.pk])), "measured"
            else:
                watts, energy_basis[node.pk] = Decimal(node.power_limit_w or 0) * POWER_LIMIT_SHARE, "estimated"
            per_gpu_h = base + watts * energy_usd_per_kwh(node.site) / 1000
        else:
            price = book.instance_usd_per_h(
                provider_kind=kind,
                region=node.site.region,
                instance_type=node.instance_type,
                spot=node.lifecycle == NodeLifecycle.SPOT,
                provider=node.site.provider,
            )
            if price is None:
                continue
            per_gpu_h = price / node.gpu_total
        free = node.usable - node.busy
        if free <= 0:
            continue
        nodes.append(
            NodeIn(
                id=node.pk,
                name=node.name,
                location=location.key,
                provider_kind=kind,
                region=node.site.name if kind == ProviderKind.ONPREM else node.site.region,
                gpu_model=gpu_key(node.gpu_name),
                gpu_memory_mib=node_gpu_memory_mib(node.gpu_name, node.memory_mib),
                free_gpus=free,
                usd_per_gpu_h=per_gpu_h,
                spot=node.lifecycle == NodeLifecycle.SPOT,
            )
        )
    offers = offer_ins(book=book, providers=providers)
    network = TariffNetwork(
        tariff=EgressTariff.load(day=day), locations=locations, unpriceable_infeasible=unpriceable_infeasible
    )
    return FleetInputs(
        nodes=nodes, offers=offers, network=network, node_rows={n.pk: n for n in rows}, energy_basis=energy_basis
    )


def launch_providers() -> dict[str, Provider]:
    """The cloud account that launches (and is discounted) for each provider kind: the first enabled one by name."""
    chosen: dict[str, Provider] = {}
    for provider in Provider.objects.filter(enabled=True).exclude(kind=ProviderKind.ONPREM).order_by("name"):
        chosen.setdefault(provider.kind, provider)
    return chosen


def offer_region_ok(provider: Provider, region: str) -> bool:
    """Whether ``provider`` launches (and inventory sync then finds) instances in ``region``: AWS only in its
    configured regions; GCP in its regions, or anywhere when it lists none (sync then scans every zone)."""
    if provider.kind == ProviderKind.AWS or provider.regions:
        return region in (provider.regions or ())
    return True


def offer_ins(*, book: PriceBook, providers: dict[str, Provider] | None = None) -> list[OfferIn]:
    """One offer per purchase option of every priced instance type of the provider kinds with an enabled account,
    in the regions that account launches in (``offer_region_ok``)."""
    providers = launch_providers() if providers is None else providers
    offers = []
    for offer in book.offers():
        provider = providers.get(offer.provider_kind)
        spec = GPU_SPECS.get(offer.gpu_model)
        if provider is None or spec is None or not offer_region_ok(provider, offer.region):
            continue
        location = Location(provider_kind=offer.provider_kind, region=offer.region).key
        for spot, listed in ((False, offer.on_demand_usd_per_h), (True, offer.spot_usd_per_h)):
            if listed is None:
                continue
            price = book.instance_usd_per_h(
                provider_kind=offer.provider_kind,
                region=offer.region,
                instance_type=offer.instance_type,
                spot=spot,
                provider=provider,
            )
            offers.append(
                OfferIn(
                    provider_kind=offer.provider_kind,
                    region=offer.region,
                    location=location,
                    instance_type=offer.instance_type,
                    gpu_model=offer.gpu_model,
                    gpu_memory_mib=spec.memory_mib,
                    gpu_count=offer.gpu_count,
                    usd_per_h=price if price is not None else listed,
                    spot=spot,
                )
            )
    return offers


def _money(value) -> str:
    return str(Decimal(value).quantize(Decimal("0.000001")))


def candidate_dict(candidate, *, datasets: dict[int, DatasetIn] | None = None) -> dict:
    """A Candidate as JSON-able data (what Placement.alternatives and the what-if answer hold)."""
    names = {pk: d.name for pk, d in (datasets or {}).items()}
    offer = candidate.offer
    return {
        "kind": candidate.kind,
        "label": candidate.label,
        "node_id": candidate.node_id,
        "location": candidate.location,
        "provider_kind": offer.provider_kind if offer else candidate.location.partition(":")[0],
        "instance_type": offer.instance_type if offer else "",
        "spot": offer.spot if offer else False,
        "gpus": candidate.gpus,
        "instance_count": candidate.instance_count,
        "usd_per_h": _money(candidate.usd_per_h),
        "compute_usd": _money(candidate.compute_usd),
        "egress_usd": _money(candidate.egress_usd),
        "total_usd": _money(candidate.total_usd),
        "transfer_s": round(candidate.transfer_s),
        "moves": [
            {
                "dataset_id": move.dataset_id,
                "dataset": names.get(move.dataset_id, ""),
                "source": move.source,
                "destination": move.destination,
                "bytes": move.size_bytes,
                "usd": _money(move.usd),
                "seconds": round(move.seconds),
            }
            for move in candidate.moves
        ],
    }


def _breakdown(candidate, job_datasets: list[DatasetIn]) -> list[dict]:
    """One row per input dataset: where it is, where it goes, and what moving it costs (0 when already there)."""
    moves = {move.dataset_id: move for move in candidate.moves}
    rows = []
    for dataset in job_datasets:
        move = moves.get(dataset.id)
        rows.append(
            {
                "dataset_id": dataset.id,
                "dataset": dataset.name,
                "source": dataset.location,
                "destination": candidate.location,
                "bytes": dataset.size_bytes,
                "moved": move is not None,
                "usd": _money(move.usd if move else 0),
                "seconds": round(move.seconds) if move else 0,
            }
        )
    return rows


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
        "breakdown": _breakdown(chosen, job_datasets),
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
    from scheduler.launch import placement_launch_prepare, placements_launch_enqueue

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
        pending = (
            Job.objects.filter(state=JobState.PENDING)
            .select_related("team", "project")
            .select_for_update(skip_locked=True, of=("self",))
        )
        if job_ids is not None:
            pending = pending.filter(pk__in=job_ids)
        jobs = list(pending.order_by("pk"))
        if not jobs:
            return report
        links = Job.datasets.through.objects.filter(job_id__in=[j.pk for j in jobs]).values_list("job_id", "dataset_id")
        job_dataset_ids: dict[int, list[int]] = defaultdict(list)
        for job_id, dataset_id in links:
            job_dataset_ids[job_id].append(dataset_id)
        wanted = {pk for ids in job_dataset_ids.values() for pk in ids}
        datasets, locations = dataset_ins(Dataset.objects.filter(pk__in=wanted).select_related("site__provider"))
        providers = launch_providers()
        inputs = fleet_inputs(now=now, extra_locations=locations, providers=providers, unpriceable_infeasible=True)
        job_inputs = [job_in(job, tuple(sorted(job_dataset_ids[job.pk]))) for job in jobs]
        result = place_batch(
            job_inputs,
            nodes=inputs.nodes,
            offers=inputs.offers,
            datasets=datasets,
            network=inputs.network,
            method=method,
        )
        by_id = {job.pk: job for job in jobs}
        placements, decisions = [], []
        for job_id, decision in sorted(result.decisions.items()):
            job = by_id[job_id]
            job_datasets = [datasets[pk] for pk in sorted(job_dataset_ids[job_id]) if pk in datasets]
            placement = _placement_build(job=job, decision=decision, inputs=inputs, job_datasets=job_datasets, now=now)
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
            by_id[job_id].pending_reason = reason[:500]
        Job.objects.bulk_update(jobs, ["state", "pending_reason"])
        report.placed = sorted(result.decisions)
        report.unplaced = dict(sorted(result.unplaced.items()))
        report.launches = placements_launch_enqueue(placements=placements)
    logger.info("placed %d jobs, %d unplaced", len(report.placed), len(report.unplaced))
    return report


def job_what_if(*, data: dict, now: datetime | None = None) -> tuple[list, dict[int, DatasetIn]]:
    """Every feasible candidate for a would-be job (validated data, not saved), ranked, and its datasets.

    Raises ValidationError on ``datasets`` when no egress rate covers a move (the prices are not loaded).
    """
    now = now or timezone.now()
    job = Job(**{k: v for k, v in _job_fields(data).items() if k not in ("team", "project")})
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


@transaction.atomic
def job_transition(*, job: Job, state: str, now: datetime | None = None) -> Job:
    """Move a job to ``state`` (placed→running→succeeded/failed; any live state→cancelled); raise TransitionError.

    Ending a job keeps its placement as history; its GPUs count as free again because only placed and running
    jobs hold GPUs. A placed job cancelled before it ran drops its planned egress (the data never moved); a job
    that starts running makes its active placement's planned egress real (planned=False, occurred_at=now), so
    the spend reads count it.
    """
    now = now or timezone.now()
    job = Job.objects.select_for_update().get(pk=job.pk)
    if state not in TRANSITIONS.get(job.state, ()):
        allowed = ", ".join(TRANSITIONS.get(job.state, ())) or "none (it has ended)"
        raise TransitionError(f"A {job.state} job cannot become {state}; allowed: {allowed}.")
    previous, job.state = job.state, state
    fields = ["state"]
    if state == JobState.RUNNING:
        job.started_at = now
        fields.append("started_at")
        EgressRecord.objects.filter(placement__job=job, placement__active=True, planned=True).update(
            planned=False, occurred_at=now
        )
    if state in ENDED_JOB_STATES:
        job.ended_at = now
        fields.append("ended_at")
    if previous == JobState.PLACED and state == JobState.CANCELLED:
        EgressRecord.objects.filter(placement__job=job, planned=True).delete()
    job.save(update_fields=fields)
    if state in ENDED_JOB_STATES and previous != JobState.PENDING:
        from scheduler.tasks import jobs_place as jobs_place_task

        transaction.on_commit(partial(jobs_place_task.delay))
    return job


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
    records are deleted (the data never moved; the next placement plans its own). Returns the re-queued job ids.
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
    EgressRecord.objects.filter(placement__in=placements, planned=True).delete()
    Placement.objects.filter(pk__in=[p.pk for p in placements]).update(active=False)
    Job.objects.filter(pk__in=job_ids, state=JobState.PLACED).update(
        state=JobState.PENDING, pending_reason="Re-queued: its node became unreachable."
    )
    from scheduler.tasks import jobs_place as jobs_place_task

    transaction.on_commit(partial(jobs_place_task.delay))
    return job_ids
