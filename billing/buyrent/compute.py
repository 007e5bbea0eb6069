"""Buy vs rent's arithmetic, from inputs already read (no query): the cloud prices of a model (list and
committed), the owning cost and energy to compare, and the break-evens (formulas in billing.buyrent)."""

from __future__ import annotations

from decimal import Decimal

from billing.buyrent.figures import (
    ASSUMED_AMORTISATION_MONTHS,
    ASSUMED_OPS_USD_PER_GPU_YEAR,
    ASSUMED_PUE,
    ASSUMED_USD_PER_KWH,
    HUNDRED,
    ONE,
    ZERO,
    BreakEven,
    BuyRentRow,
    CloudPrice,
    Energy,
    ModelUsage,
    OnPremCost,
    WhatIf,
    usd6,
)
from billing.choices import CommitmentBasis
from billing.models import Commitment
from billing.models.prices import HOURS_PER_MONTH
from billing.rates import POWER_LIMIT_SHARE, Offer
from fleet.catalog import GPU_SPECS, INSTANCE_TYPES


def cloud_price_cheapest(*, offers: list[Offer], gpu_model: str, spot: bool) -> CloudPrice | None:
    """The cheapest list $/GPU-hour of ``gpu_model`` (whole-instance $/h ÷ GPUs) among ``offers``; None if unpriced."""
    best = None
    for offer in offers:
        price = offer.spot_usd_per_h if spot else offer.on_demand_usd_per_h
        if offer.gpu_model != gpu_model or price is None:
            continue
        candidate = CloudPrice(
            usd_per_gpu_hour=usd6(price / offer.gpu_count),
            basis="list",
            provider_kind=offer.provider_kind,
            region=offer.region,
            instance_type=offer.instance_type,
        )
        if best is None or _cloud_rank(candidate) < _cloud_rank(best):
            best = candidate
    return best


def _cloud_rank(price: CloudPrice) -> tuple:
    return (price.usd_per_gpu_hour, price.provider_kind, price.region, price.instance_type, price.commitment)


def _instance_gpus(*, offers: list[Offer], provider_kind: str, region: str, instance_type: str) -> tuple[str, int]:
    """(GPU catalogue key, GPU count) of an instance type: from a price row, else fleet.catalog; ("", 0) unknown."""
    for offer in offers:
        if (offer.provider_kind, offer.instance_type) == (provider_kind, instance_type) and region in (
            "",
            offer.region,
        ):
            return offer.gpu_model, offer.gpu_count
    shape = INSTANCE_TYPES.get(instance_type)
    if shape is not None and shape.provider == provider_kind:
        return shape.gpu, shape.gpu_count
    return "", 0


def commitment_prices(*, commitment: Commitment, offers: list[Offer], gpu_model: str) -> list[CloudPrice]:
    """The $/GPU-hour ``commitment`` gives ``gpu_model`` (its provider loaded): one price or none."""
    kind = commitment.provider.kind
    if commitment.basis == CommitmentBasis.COUNT:
        if commitment.rate_usd_per_h is None or not commitment.instance_type:
            return []
        key, gpus = _instance_gpus(
            offers=offers, provider_kind=kind, region=commitment.region, instance_type=commitment.instance_type
        )
        if key != gpu_model or not gpus:
            return []
        return [
            CloudPrice(
                usd_per_gpu_hour=usd6(commitment.rate_usd_per_h / gpus),
                basis="commitment",
                provider_kind=kind,
                region=commitment.region,
                instance_type=commitment.instance_type,
                commitment=commitment.name,
            )
        ]
    if commitment.discount_pct is None:
        return []
    eligible = [
        o
        for o in offers
        if o.gpu_model == gpu_model
        and o.provider_kind == kind
        and o.on_demand_usd_per_h is not None
        and commitment.region in ("", o.region)
        and commitment.instance_type in ("", o.instance_type)
    ]
    cheapest = cloud_price_cheapest(offers=eligible, gpu_model=gpu_model, spot=False)
    if cheapest is None:
        return []
    return [
        CloudPrice(
            usd_per_gpu_hour=usd6(cheapest.usd_per_gpu_hour * (HUNDRED - commitment.discount_pct) / HUNDRED),
            basis="commitment",
            provider_kind=kind,
            region=cheapest.region,
            instance_type=cheapest.instance_type,
            commitment=commitment.name,
            discount_pct=commitment.discount_pct,
        )
    ]


def committed_price(
    *,
    gpu_model: str,
    offers: list[Offer],
    commitments: list[Commitment],
    on_demand: CloudPrice | None,
    savings_plan_pct: Decimal,
) -> CloudPrice | None:
    """The best in-force commitment's $/GPU-hour for ``gpu_model``, else on-demand less the assumed plan discount."""
    prices = [p for c in commitments for p in commitment_prices(commitment=c, offers=offers, gpu_model=gpu_model)]
    if prices:
        return min(prices, key=_cloud_rank)
    if on_demand is None:
        return None
    return CloudPrice(
        usd_per_gpu_hour=usd6(on_demand.usd_per_gpu_hour * (HUNDRED - savings_plan_pct) / HUNDRED),
        basis="assumption",
        provider_kind=on_demand.provider_kind,
        region=on_demand.region,
        instance_type=on_demand.instance_type,
        discount_pct=savings_plan_pct,
    )


def energy_resolve(*, gpu_model: str, usage: ModelUsage, site, what_if: WhatIf) -> tuple[Energy, list[str]]:
    """The energy of a used GPU-hour and the notes on what was assumed (``site``: the cost model's, or None)."""
    notes = []
    kwh = usage.kwh_per_used_gpu_hour
    kwh_basis = "measured"
    if kwh is None:
        spec = GPU_SPECS.get(gpu_model)
        if spec is None:
            kwh, kwh_basis = ZERO, "unknown"
            notes.append(f"Energy: {gpu_model} has no measurement and no known power limit; counted as 0 kWh.")
        else:
            pue = (site.pue or ONE) if site is not None else ASSUMED_PUE
            kwh, kwh_basis = Decimal(spec.power_limit_w) * POWER_LIMIT_SHARE / 1000 * pue, "estimated"
            notes.append(
                f"Energy: not measured on-prem in this window; estimated as {spec.power_limit_w} W × "
                f"{POWER_LIMIT_SHARE} × PUE {pue}{'' if site is not None else ' (assumed)'}."
            )
    if what_if.usd_per_kwh is not None:
        price, price_basis = what_if.usd_per_kwh, "what-if"
    elif site is not None and site.electricity_usd_per_kwh is not None:
        price, price_basis = site.electricity_usd_per_kwh, "site"
    else:
        price, price_basis = ASSUMED_USD_PER_KWH, "assumption"
        notes.append(f"Electricity: no site price known; ${ASSUMED_USD_PER_KWH}/kWh assumed.")
    return Energy(kwh_per_gpu_hour=kwh, kwh_basis=kwh_basis, usd_per_kwh=price, price_basis=price_basis), notes


def onprem_cost_resolve(
    *, gpu_model: str, fleet: OnPremCost | None, what_if: WhatIf
) -> tuple[OnPremCost | None, list[str]]:
    """The owning cost to compare: the fleet's cost model with the what-if figures put in; None without a price."""
    purchase = what_if.purchase_usd_per_gpu
    if purchase is None and fleet is None:
        return None, [f"On-prem: no cost model covers the fleet's {gpu_model} GPUs; give a purchase price to compare."]
    notes = []
    months = what_if.amortisation_months or (fleet.amortisation_months if fleet else None)
    if months is None:
        months = ASSUMED_AMORTISATION_MONTHS
        notes.append(f"Amortisation: {ASSUMED_AMORTISATION_MONTHS} months assumed.")
    ops = what_if.ops_usd_per_gpu_year
    if ops is None:
        ops = fleet.ops_usd_per_gpu_year if fleet else None
    if ops is None:
        ops = ASSUMED_OPS_USD_PER_GPU_YEAR
        notes.append(f"Operations: not known; ${ASSUMED_OPS_USD_PER_GPU_YEAR}/GPU-year assumed.")
    changed = any(v is not None for v in (purchase, what_if.amortisation_months, what_if.ops_usd_per_gpu_year))
    return (
        OnPremCost(
            purchase_usd_per_gpu=purchase if purchase is not None else fleet.purchase_usd_per_gpu,
            amortisation_months=months,
            ops_usd_per_gpu_year=ops,
            basis="what-if" if changed else "cost-model",
            cost_model_id=fleet.cost_model_id if fleet else None,
            site=fleet.site if fleet else "",
            effective_from=fleet.effective_from if fleet else None,
            covered_gpu_hours=fleet.covered_gpu_hours if fleet else ZERO,
        ),
        notes,
    )


def onprem_usd_per_used_gpu_hour(*, owned_usd: Decimal, utilisation: Decimal, energy_usd: Decimal) -> Decimal | None:
    """C(u) = B / u + E; None at u = 0 (no hour is used)."""
    if utilisation <= 0:
        return None
    return owned_usd / utilisation + energy_usd


def break_even_figure(
    *, versus: str, cloud: CloudPrice, onprem: OnPremCost, energy_usd: Decimal, utilisation: Decimal | None
) -> BreakEven:
    """Owning ``onprem`` against renting at ``cloud``: u* = B / (P − E), months = purchase / S (module docstring)."""
    owned, price = onprem.usd_per_owned_gpu_hour, cloud.usd_per_gpu_hour
    margin = price - energy_usd
    u_star = owned / margin if margin > 0 else None
    if u_star is not None and u_star > ONE:
        u_star = None
    cheaper = saving = months = None
    if utilisation is not None:
        cost = onprem_usd_per_used_gpu_hour(owned_usd=owned, utilisation=utilisation, energy_usd=energy_usd)
        cheaper = cost is not None and cost < price
        saving = utilisation * HOURS_PER_MONTH * margin - onprem.ops_usd_per_gpu_year / 12
        if cheaper:
            months = onprem.purchase_usd_per_gpu / saving
    return BreakEven(
        versus=versus,
        cloud_usd_per_gpu_hour=price,
        utilisation=u_star,
        onprem_cheaper=cheaper,
        saving_usd_per_month=saving,
        months=months,
    )


def buyrent_row(
    *,
    gpu_model: str,
    usage: ModelUsage,
    offers: list[Offer],
    commitments: list[Commitment],
    fleet_cost: OnPremCost | None,
    site,
    what_if: WhatIf,
    savings_plan_pct: Decimal,
) -> BuyRentRow:
    """Buy vs rent for one model from its inputs (no query): prices, owning cost, energy and the break-evens."""
    notes = []
    if what_if.utilisation_pct is not None:
        utilisation, basis = what_if.utilisation_pct / HUNDRED, "what-if"
    elif usage.utilisation is not None:
        utilisation, basis = usage.utilisation, "measured"
    else:
        utilisation, basis = None, ""
        notes.append(f"Utilisation: the fleet has no {gpu_model} GPU-hours in this window; give one to compare.")
    on_demand = cloud_price_cheapest(offers=offers, gpu_model=gpu_model, spot=False)
    spot = cloud_price_cheapest(offers=offers, gpu_model=gpu_model, spot=True)
    committed = committed_price(
        gpu_model=gpu_model,
        offers=offers,
        commitments=commitments,
        on_demand=on_demand,
        savings_plan_pct=savings_plan_pct,
    )
    if on_demand is None:
        notes.append(f"Cloud: no instance price in force carries {gpu_model}.")
    elif committed is not None and committed.basis == "assumption":
        notes.append(
            f"Commitments: none in force covers {gpu_model}; assumed a typical 1-year savings plan, "
            f"{savings_plan_pct} % off on-demand."
        )
    onprem, cost_notes = onprem_cost_resolve(gpu_model=gpu_model, fleet=fleet_cost, what_if=what_if)
    energy, energy_notes = energy_resolve(gpu_model=gpu_model, usage=usage, site=site, what_if=what_if)
    notes += cost_notes + energy_notes
    used_cost = None
    break_even = []
    if onprem is not None:
        if utilisation is not None:
            used_cost = onprem_usd_per_used_gpu_hour(
                owned_usd=onprem.usd_per_owned_gpu_hour, utilisation=utilisation, energy_usd=energy.usd_per_gpu_hour
            )
        for versus, cloud in (("on-demand", on_demand), ("spot", spot), ("commitments", committed)):
            if cloud is not None:
                break_even.append(
                    break_even_figure(
                        versus=versus,
                        cloud=cloud,
                        onprem=onprem,
                        energy_usd=energy.usd_per_gpu_hour,
                        utilisation=utilisation,
                    )
                )
    return BuyRentRow(
        gpu_model=gpu_model,
        usage=usage,
        utilisation=utilisation,
        utilisation_basis=basis,
        on_demand=on_demand,
        spot=spot,
        committed=committed,
        onprem=onprem,
        energy=energy,
        onprem_usd_per_used_gpu_hour=used_cost,
        break_even=tuple(break_even),
        notes=tuple(notes),
    )
