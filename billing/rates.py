"""What an hour of capacity and a GB of data movement cost on a given day: the pricing interface of Fleetdeck.

Prices change only at UTC day boundaries (``effective_from`` is a date), so an hour has one price. Every lookup
takes the day it prices: a price in the past stays true for the past.

- ``PriceBook``: cloud instance prices and negotiated discounts in force on one day.
- ``onprem_gpu_hour_usd`` / ``onprem_rates``: the amortisation + operations cost of owned GPUs.
- ``onprem_gpu_hour_prices``: the whole $/GPU-hour of owned GPUs (amortisation + operations + energy), the one
  formula the scheduler compares with cloud prices and the ledger charges (``billing.ledger``'s SQL).
- ``EgressTariff``: $ for moving data between two ``Location``s, by location class and volume tier.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q

from billing.choices import LocationClass, PriceSource, PurchaseOption
from billing.models import Discount, EgressRate, InstancePrice, OnPremCostModel
from fleet.choices import Continent, ProviderKind
from fleet.telemetry.series import node_power_avg_w

BYTES_PER_GB = Decimal(10**9)
USD_PLACES = Decimal("0.000001")
HUNDRED = Decimal(100)

# Region name prefixes → continent. Longer prefixes first: "ap-southeast-2" (Sydney) is in Oceania, not Asia.
CONTINENT_PREFIXES: dict[str, tuple[tuple[str, Continent], ...]] = {
    ProviderKind.AWS: (
        ("ap-southeast-2", Continent.OCEANIA),
        ("ap-southeast-4", Continent.OCEANIA),
        ("ap-southeast-6", Continent.OCEANIA),
        ("us-", Continent.NORTH_AMERICA),
        ("ca-", Continent.NORTH_AMERICA),
        ("mx-", Continent.NORTH_AMERICA),
        ("sa-", Continent.SOUTH_AMERICA),
        ("eu-", Continent.EUROPE),
        ("ap-", Continent.ASIA),
        ("cn-", Continent.ASIA),
        ("me-", Continent.MIDDLE_EAST),
        ("il-", Continent.MIDDLE_EAST),
        ("af-", Continent.AFRICA),
    ),
    ProviderKind.GCP: (
        ("us-", Continent.NORTH_AMERICA),
        ("northamerica-", Continent.NORTH_AMERICA),
        ("southamerica-", Continent.SOUTH_AMERICA),
        ("europe-", Continent.EUROPE),
        ("asia-", Continent.ASIA),
        ("australia-", Continent.OCEANIA),
        ("me-", Continent.MIDDLE_EAST),
        ("africa-", Continent.AFRICA),
    ),
}


def region_continent(provider_kind: str, region: str) -> str:
    """The continent of a cloud region by its name (``us-east-1`` → north-america); "" when unknown or on-prem."""
    for prefix, continent in CONTINENT_PREFIXES.get(provider_kind, ()):
        if region.startswith(prefix):
            return continent.value
    return ""


@dataclass(frozen=True)
class Location:
    """Where data or GPUs are: a cloud region (and zone) or, on-prem, a site."""

    provider_kind: str
    region: str  # cloud region, or the on-prem site's name
    zone: str = ""
    continent: str = ""  # derived from the region when empty

    def __post_init__(self) -> None:
        if not self.continent:
            object.__setattr__(self, "continent", region_continent(self.provider_kind, self.region))

    @property
    def key(self) -> str:
        """``aws:us-east-1``, ``gcp:us-central1``, ``onprem:dc-1``."""
        return f"{self.provider_kind}:{self.region}"

    @classmethod
    def from_site(cls, site) -> Location:
        """The location of a fleet Site (its provider is read; select_related it for many sites)."""
        kind = site.provider.kind
        region = site.name if kind == ProviderKind.ONPREM else site.region
        return cls(provider_kind=kind, region=region, zone=site.zone, continent=site.continent)


# A destination outside the fleet (users, a partner, a public bucket): egress priced as "internet".
OUTSIDE_KIND = "internet"
INTERNET = Location(provider_kind=OUTSIDE_KIND, region="")


def location_class(src: Location, dst: Location) -> LocationClass:
    """How far data travels from ``src`` to ``dst``; "internet" when ``dst`` is outside the fleet (``INTERNET``)."""
    if dst.provider_kind not in ProviderKind.values:
        return LocationClass.INTERNET
    if src.provider_kind != dst.provider_kind:
        return LocationClass.OTHER_CLOUD
    if src.region == dst.region:
        # An unknown zone on either side may be another zone: charge as such.
        if src.zone == dst.zone:
            return LocationClass.SAME_ZONE
        return LocationClass.SAME_REGION
    if src.continent and src.continent == dst.continent:
        return LocationClass.SAME_CONTINENT
    return LocationClass.OTHER_CONTINENT


class EgressRateMissing(LookupError):
    """No egress rate is in force for a provider kind and location class (load the catalogue)."""


def _usd(value: Decimal) -> Decimal:
    return value.quantize(USD_PLACES, rounding=ROUND_HALF_UP)


class EgressTariff:
    """Every egress rate in force on one day: per (provider kind, class), the tiers of the latest date."""

    def __init__(self, *, day: date, tiers: dict[tuple[str, str], list[tuple[int, Decimal]]]):
        self.day = day
        self._tiers = tiers

    @classmethod
    def load(cls, *, day: date) -> EgressTariff:
        """The tariff in force on ``day`` (one query)."""
        latest: dict[tuple[str, str], date] = {}
        rows = defaultdict(list)
        for rate in EgressRate.objects.filter(effective_from__lte=day).order_by("-effective_from", "tier_start_gb"):
            key = (rate.provider_kind, rate.location_class)
            if latest.setdefault(key, rate.effective_from) == rate.effective_from:
                rows[key].append((rate.tier_start_gb, rate.usd_per_gb))
        return cls(day=day, tiers={key: sorted(tiers) for key, tiers in rows.items()})

    def tiers(self, provider_kind: str, location_class: str) -> list[tuple[int, Decimal]]:
        """(tier start GB, $/GB) in order; EgressRateMissing when none is in force."""
        try:
            return self._tiers[(provider_kind, location_class)]
        except KeyError:
            raise EgressRateMissing(
                f"no {provider_kind} egress rate for {location_class} in force on {self.day} "
                "(run manage.py load_prices, or add one in the admin)"
            ) from None

    def usd(self, src: Location, dst: Location, size_bytes: int) -> Decimal:
        """$ for one transfer, charged by the source's provider kind; tiers apply from zero for this transfer.

        GB = 10**9 bytes. The lowest tier covers from zero even when its start is above it.
        """
        if src == dst or size_bytes <= 0:
            return Decimal("0.000000")
        tiers = self.tiers(src.provider_kind, location_class(src, dst))
        size_gb = Decimal(size_bytes) / BYTES_PER_GB
        total = Decimal(0)
        for index, (start, rate) in enumerate(tiers):
            lower = Decimal(start) if index else Decimal(0)
            upper = Decimal(tiers[index + 1][0]) if index + 1 < len(tiers) else None
            if size_gb <= lower:
                break
            total += ((size_gb if upper is None else min(size_gb, upper)) - lower) * rate
        return _usd(total)

    def usd_per_gb(self, src: Location, dst: Location) -> Decimal:
        """The first tier's $/GB (note: AWS's first 100 GB to the internet are free, so that is 0)."""
        if src == dst:
            return Decimal(0)
        return self.tiers(src.provider_kind, location_class(src, dst))[0][1]


@dataclass(frozen=True)
class Offer:
    """An instance type one can buy in a region, with its list prices (before discounts)."""

    provider_kind: str
    region: str
    instance_type: str
    gpu_model: str
    gpu_count: int
    on_demand_usd_per_h: Decimal | None
    spot_usd_per_h: Decimal | None


# Among non-override rows of one day, the Price List API is fresher than the shipped catalogue.
SOURCE_RANK = {PriceSource.AWS_PRICE_LIST: 2, PriceSource.CATALOGUE: 1}
# A discount for one purchase option beats one for all of them.
DISCOUNT_SPECIFICITY = {PurchaseOption.ALL: 0, PurchaseOption.ON_DEMAND: 1, PurchaseOption.SPOT: 1}


def _price_rank(price: InstancePrice) -> tuple:
    """Greater is the row in force: any override beats any other source; then later days, then source."""
    is_override = price.source == PriceSource.OVERRIDE
    return (is_override, price.effective_from, SOURCE_RANK.get(price.source, 0), price.pk or 0)


class PriceBook:
    """Cloud instance prices and discounts in force on one day (two queries to load)."""

    def __init__(self, *, day: date, prices: list[InstancePrice], discounts: list[Discount]):
        self.day = day
        self._prices: dict[tuple[str, str, str], InstancePrice] = {}
        for price in prices:
            key = (price.provider_kind, price.region, price.instance_type)
            current = self._prices.get(key)
            if current is None or _price_rank(price) > _price_rank(current):
                self._prices[key] = price
        self._discounts: dict[int, list[Discount]] = defaultdict(list)
        for discount in discounts:
            self._discounts[discount.provider_id].append(discount)

    @classmethod
    def load(cls, *, day: date) -> PriceBook:
        """The prices and discounts in force on ``day``."""
        prices = list(InstancePrice.objects.filter(effective_from__lte=day))
        discounts = list(
            Discount.objects.filter(
                Q(effective_to__isnull=True) | Q(effective_to__gte=day), effective_from__lte=day
            ).order_by("pk")
        )
        return cls(day=day, prices=prices, discounts=discounts)

    def price(self, *, provider_kind: str, region: str, instance_type: str) -> InstancePrice | None:
        """The price row in force for an instance type in a region, or None."""
        return self._prices.get((provider_kind, region, instance_type))

    def in_force_ids(self) -> list[int]:
        """Primary keys of the rows in force (one per instance type and region)."""
        return sorted(p.pk for p in self._prices.values())

    def discount(self, *, provider, spot: bool) -> Discount | None:
        """The provider account's discount that applies: the most specific, then the latest-starting one."""
        provider_id = getattr(provider, "pk", provider)
        option = PurchaseOption.SPOT if spot else PurchaseOption.ON_DEMAND
        applicable = [d for d in self._discounts.get(provider_id, ()) if d.applies_to in (PurchaseOption.ALL, option)]
        if not applicable:
            return None
        return max(applicable, key=lambda d: (DISCOUNT_SPECIFICITY[d.applies_to], d.effective_from, d.pk))

    def instance_usd_per_h(
        self, *, provider_kind: str, region: str, instance_type: str, spot: bool, provider=None
    ) -> Decimal | None:
        """Whole-instance $/h after the account's discount (reserved nodes: pass spot=False); None if unknown."""
        row = self.price(provider_kind=provider_kind, region=region, instance_type=instance_type)
        if row is None:
            return None
        list_price = row.spot_usd_per_h if spot else row.on_demand_usd_per_h
        if list_price is None:
            return None
        discount = self.discount(provider=provider, spot=spot) if provider is not None else None
        if discount is None:
            return _usd(list_price)
        return _usd(list_price * (HUNDRED - discount.percent) / HUNDRED)

    def offers(self) -> list[Offer]:
        """Every instance type with a price in force, before discounts, sorted by kind, region and type."""
        return [
            Offer(
                provider_kind=p.provider_kind,
                region=p.region,
                instance_type=p.instance_type,
                gpu_model=p.gpu_model,
                gpu_count=p.gpu_count,
                on_demand_usd_per_h=p.on_demand_usd_per_h,
                spot_usd_per_h=p.spot_usd_per_h,
            )
            for _, p in sorted(self._prices.items())
        ]


def onprem_rates(*, nodes, day: date) -> dict[int, Decimal]:
    """$/GPU-hour (amortisation + operations) of many on-prem nodes on ``day``, in two queries.

    Per node: its own cost model, else its site's model for the node's GPU model (NVML name), else its site's
    model with an empty GPU model; of each, the latest with ``effective_from`` <= day. Nodes without one are
    left out of the result.
    """
    from fleet.models import GPU

    nodes = list(nodes)
    if not nodes:
        return {}
    node_ids = [n.pk for n in nodes]
    site_ids = {n.site_id for n in nodes}
    models_by_node: dict[int, Counter] = defaultdict(Counter)
    for node_id, model in GPU.objects.filter(node_id__in=node_ids).values_list("node_id", "model"):
        models_by_node[node_id][model] += 1
    own: dict[int, OnPremCostModel] = {}
    by_site: dict[tuple[int, str], OnPremCostModel] = {}
    # Oldest first, so a later model overwrites an earlier one for the same scope.
    for cost in OnPremCostModel.objects.filter(
        Q(node_id__in=node_ids) | Q(site_id__in=site_ids), effective_from__lte=day
    ).order_by("effective_from", "pk"):
        if cost.node_id is not None:
            own[cost.node_id] = cost
        else:
            by_site[(cost.site_id, cost.gpu_model)] = cost
    rates = {}
    for node in nodes:
        counts = models_by_node.get(node.pk)
        # The most common model (a node's GPUs are normally one model); ties by name, deterministic.
        gpu_model = min(counts.items(), key=lambda item: (-item[1], item[0]))[0] if counts else None
        cost = (
            own.get(node.pk)
            or (by_site.get((node.site_id, gpu_model)) if gpu_model else None)
            or by_site.get((node.site_id, ""))
        )
        if cost is not None:
            rates[node.pk] = cost.usd_per_gpu_hour
    return rates


def onprem_gpu_hour_usd(*, node, day: date) -> Decimal | None:
    """$/GPU-hour (amortisation + operations, energy excluded) of one on-prem node on ``day``; None if no model."""
    return onprem_rates(nodes=[node], day=day).get(node.pk)


# The window of measured power an on-prem GPU-hour price is based on; without any, a GPU is assumed to draw this
# share of its power limit while it works.
POWER_WINDOW = timedelta(days=1)
POWER_LIMIT_SHARE = Decimal("0.7")


@dataclass(frozen=True)
class OnPremGpuHour:
    """The $ of one GPU-hour of an owned node: amortisation + operations, plus the energy its GPU draws."""

    base_usd: Decimal  # amortisation + operations (the ledger's compute $ per GPU-hour)
    watts: Decimal  # power per GPU: measured average, or POWER_LIMIT_SHARE of the power limit
    energy_basis: str  # "measured" or "estimated"
    usd_per_kwh: Decimal  # energy_usd_per_kwh(site): electricity × PUE

    @property
    def usd(self) -> Decimal:
        """base + watts × $/kWh / 1000: for an hour in which the GPU drew ``watts``, exactly what the ledger
        charges per GPU-hour ((compute $ + energy $) / GPU-hours)."""
        return self.base_usd + self.watts * self.usd_per_kwh / 1000


def onprem_gpu_hour_prices(*, nodes, now: datetime, power_window: timedelta = POWER_WINDOW) -> dict[int, OnPremGpuHour]:
    """The $/GPU-hour of on-prem ``nodes`` (sites with providers loaded; ``power_limit_w`` annotated or an
    attribute) on ``now``'s day, with power measured over ``power_window`` before ``now``. Nodes without a cost
    model are left out: their cost is unknown."""
    nodes = list(nodes)
    base = onprem_rates(nodes=nodes, day=now.date())
    measured = node_power_avg_w(node_ids=[n.pk for n in nodes if n.pk in base], since=now - power_window)
    prices = {}
    for node in nodes:
        if node.pk not in base:
            continue
        if node.pk in measured:
            watts, basis = Decimal(str(measured[node.pk])), "measured"
        else:
            watts, basis = Decimal(getattr(node, "power_limit_w", None) or 0) * POWER_LIMIT_SHARE, "estimated"
        prices[node.pk] = OnPremGpuHour(
            base_usd=base[node.pk], watts=watts, energy_basis=basis, usd_per_kwh=energy_usd_per_kwh(node.site)
        )
    return prices


def energy_usd_per_kwh(site) -> Decimal:
    """$ per kWh of GPU energy as measured: electricity price × PUE on-prem; 0 in the cloud (priced in)."""
    if site.provider.kind != ProviderKind.ONPREM:
        return Decimal(0)
    return (site.electricity_usd_per_kwh or Decimal(0)) * (site.pue or Decimal(1))
