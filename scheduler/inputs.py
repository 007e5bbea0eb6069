"""What the optimiser is given: free GPUs on usable nodes with their $/GPU-hour, cloud offers, datasets, the network.

Everything here reads; prices come from ``billing.rates`` (the one pricing interface: ``PriceBook`` for cloud
instances, ``onprem_gpu_hour_prices`` for owned GPUs, ``EgressTariff`` for moving data), so a placement compares
exactly what the ledger will charge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from billing.rates import EgressTariff, Location, PriceBook, onprem_gpu_hour_prices
from fleet.catalog import GPU_SPECS, gpu_key
from fleet.choices import NodeLifecycle, NodeState, ProviderKind
from fleet.models import Node, Provider
from scheduler.choices import ACTIVE_JOB_STATES
from scheduler.datasets import TariffNetwork, dataset_location
from scheduler.launch import GCE_JOB_LABEL, JOB_TAG, launch_providers
from scheduler.models import Job, Placement
from scheduler.optimizer import DatasetIn, JobIn, NodeIn, OfferIn

# A node whose telemetry was last seen longer ago than this is not offered (it may be gone).
NODE_SEEN_WITHIN = timedelta(minutes=15)


@dataclass
class FleetInputs:
    """Everything the optimiser needs from the database, loaded in a fixed number of queries."""

    nodes: list[NodeIn]
    offers: list[OfferIn]
    network: TariffNetwork
    node_rows: dict[int, Node]
    energy_basis: dict[int, str]  # node id -> "measured" or "estimated": where the energy $/GPU-h came from
    # Every priced usable node by id, also those with no free GPU (free_gpus 0): quota reclaim looks at them.
    priced_nodes: dict[int, NodeIn] = field(default_factory=dict)


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


def _launched_for_live_jobs_drop(rows: list[Node]) -> list[Node]:
    """Nodes without those launched for a job that is still placed or running (their GPUs are that job's)."""
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


def _usable_nodes(now: datetime) -> list[Node]:
    """Running nodes seen recently with at least one GPU not lost, annotated with their GPUs and busy count."""
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
    return _launched_for_live_jobs_drop(rows)


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
    rows = _usable_nodes(now)
    book = PriceBook.load(day=day)
    owned = onprem_gpu_hour_prices(nodes=[n for n in rows if n.site.provider.kind == ProviderKind.ONPREM], now=now)
    locations: dict[str, Location] = dict(extra_locations or {})
    nodes, energy_basis, priced = [], {}, {}
    for node in rows:
        kind = node.site.provider.kind
        location = Location.from_site(node.site)
        locations[location.key] = location
        if kind == ProviderKind.ONPREM:
            price = owned.get(node.pk)
            if price is None:
                continue  # no cost model: its cost is unknown, so it cannot be compared
            per_gpu_h, energy_basis[node.pk] = price.usd, price.energy_basis
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
        node_in = NodeIn(
            id=node.pk,
            name=node.name,
            location=location.key,
            provider_kind=kind,
            region=node.site.name if kind == ProviderKind.ONPREM else node.site.region,
            gpu_model=gpu_key(node.gpu_name),
            gpu_memory_mib=node_gpu_memory_mib(node.gpu_name, node.memory_mib),
            free_gpus=max(free, 0),
            usd_per_gpu_h=per_gpu_h,
            spot=node.lifecycle == NodeLifecycle.SPOT,
        )
        priced[node.pk] = node_in
        if free > 0:
            nodes.append(node_in)
    offers = offer_ins(book=book, providers=providers)
    network = TariffNetwork(
        tariff=EgressTariff.load(day=day), locations=locations, unpriceable_infeasible=unpriceable_infeasible
    )
    return FleetInputs(
        nodes=nodes,
        offers=offers,
        network=network,
        node_rows={n.pk: n for n in rows},
        energy_basis=energy_basis,
        priced_nodes=priced,
    )


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
