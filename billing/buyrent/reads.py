"""Buy vs rent's reads: what the fleet's GPUs of each model did (LedgerDay), the cost models that cover them, the
prices and commitments in force, and ``buy_vs_rent``, which puts them together (billing.buyrent)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum

from billing.buyrent.compute import buyrent_row
from billing.buyrent.figures import (
    NO_WHAT_IF,
    ZERO,
    BuyRentAnswer,
    BuyRentError,
    ModelUsage,
    OnPremCost,
    WhatIf,
)
from billing.models import Commitment, InstancePrice, LedgerDay, LedgerEntry, OnPremCostModel
from billing.rates import PriceBook
from billing.selectors import day_bounds
from fleet.catalog import GPU_SPECS, gpu_key
from fleet.choices import ProviderKind


def model_usage_list(*, start: date, end: date, teams: list[int] | None) -> dict[str, ModelUsage]:
    """Per catalogue key, the LedgerDay sums of ``[start, end)`` in the team scope (one grouped query)."""
    if teams is not None and not teams:
        return {}
    grouped = (
        LedgerDay.objects.filter(day__gte=start, day__lt=end)
        .for_teams(teams)
        .exclude(gpu_model="")
        .order_by()
        .values("gpu_model", "provider_kind")
        .annotate(gpu_hours=Sum("gpu_hours"), idle=Sum("idle_gpu_hours"), kwh=Sum("energy_kwh"))
    )
    sums: dict[str, dict] = defaultdict(
        lambda: {"gpu_hours": ZERO, "idle": ZERO, "op_h": ZERO, "op_idle": ZERO, "op_kwh": ZERO}
    )
    names: dict[str, set[str]] = defaultdict(set)
    for row in grouped:
        key = gpu_key(row["gpu_model"])
        into = sums[key]
        into["gpu_hours"] += row["gpu_hours"] or ZERO
        into["idle"] += row["idle"] or ZERO
        if row["provider_kind"] == ProviderKind.ONPREM:
            into["op_h"] += row["gpu_hours"] or ZERO
            into["op_idle"] += row["idle"] or ZERO
            into["op_kwh"] += row["kwh"] or ZERO
        names[key].add(row["gpu_model"])
    return {
        key: ModelUsage(
            gpu_hours=s["gpu_hours"],
            idle_gpu_hours=s["idle"],
            onprem_gpu_hours=s["op_h"],
            onprem_idle_gpu_hours=s["op_idle"],
            onprem_energy_kwh=s["op_kwh"],
            nvml_names=frozenset(names[key]),
        )
        for key, s in sums.items()
        if s["gpu_hours"] > 0
    }


def fleet_cost_models(*, day: date, start: date, end: date, names: dict[str, set[str]]) -> dict[str, tuple]:
    """Per catalogue key, (the OnPremCostModel in force on ``day`` covering most of the fleet's owned GPU-hours of
    that key in ``[start, end)``, how many GPU-hours it covers), whatever the team scope: cost models are the
    fleet's. Two or three small queries, whatever the fleet's size.

    The owned GPU-hours are the on-prem ``LedgerDay`` rows' (per site and NVML name, as the ledger names a node's
    GPUs); each is covered as the ledger prices it: its node's own model, else its site's model for the NVML
    name, else its site's model for any GPU (the latest of each with ``effective_from`` <= day). The GPU-hours of
    nodes with a model of their own are read from their hourly rows (``LedgerEntry``, by its node-hour index).
    Counting the GPU rows instead scanned every GPU of the fleet (53 ms of a 75 ms answer at 80,000 GPUs).
    ``names``: the NVML names of each key.
    """
    own: dict[int, OnPremCostModel] = {}
    by_site: dict[tuple[int, str], OnPremCostModel] = {}
    for cost in (
        OnPremCostModel.objects.filter(effective_from__lte=day)
        .select_related("site", "node__site")
        .order_by("effective_from", "pk")
    ):
        if cost.node_id is not None:
            own[cost.node_id] = cost
        else:
            by_site[(cost.site_id, cost.gpu_model)] = cost
    key_of = {name: key for key, key_names in names.items() for name in key_names}
    if not (own or by_site) or not key_of:
        return {}
    site_hours = (
        LedgerDay.objects.filter(
            day__gte=start, day__lt=end, provider_kind=ProviderKind.ONPREM, gpu_model__in=list(key_of)
        )
        .order_by()
        .values_list("site_id", "gpu_model")
        .annotate(hours=Sum("gpu_hours"))
    )
    own_hours: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    covered: dict[str, dict[int, list]] = defaultdict(dict)
    if own:
        since, until = day_bounds(start, end)
        for node_id, site_id, model, hours in (
            LedgerEntry.objects.filter(node_id__in=sorted(own), hour__gte=since, hour__lt=until)
            .filter(gpu_model__in=list(key_of))
            .order_by()
            .values_list("node_id", "site_id", "gpu_model")
            .annotate(hours=Sum("gpu_hours"))
        ):
            own_hours[(site_id, model)] += hours
            covered[key_of[model]].setdefault(own[node_id].pk, [own[node_id], ZERO])[1] += hours
    for site_id, model, hours in site_hours:
        cost = by_site.get((site_id, model)) or by_site.get((site_id, ""))
        rest = hours - own_hours.get((site_id, model), ZERO)
        if cost is not None and rest > 0:
            covered[key_of[model]].setdefault(cost.pk, [cost, ZERO])[1] += rest
    return {
        key: tuple(max(tally.values(), key=lambda item: (item[1], item[0].effective_from, item[0].pk)))
        for key, tally in covered.items()
    }


def fleet_onprem_cost(cost: OnPremCostModel, gpu_hours: Decimal) -> tuple[OnPremCost, object]:
    """The OnPremCost of one of the fleet's cost models, and the site whose electricity and PUE it is under."""
    site = cost.site if cost.site_id else cost.node.site
    return (
        OnPremCost(
            purchase_usd_per_gpu=cost.purchase_usd_per_gpu,
            amortisation_months=cost.amortisation_months,
            ops_usd_per_gpu_year=cost.ops_usd_per_gpu_year,
            basis="cost-model",
            cost_model_id=cost.pk,
            site=site.name,
            effective_from=cost.effective_from,
            covered_gpu_hours=gpu_hours,
        ),
        site,
    )


def buy_vs_rent(
    *,
    start: date,
    end: date,
    teams: list[int] | None,
    today: date,
    gpu_model: str = "",
    what_if: WhatIf = NO_WHAT_IF,
    savings_plan_pct: Decimal | None = None,
) -> BuyRentAnswer:
    """Buy vs rent for every GPU model with GPU-hours in ``[start, end)`` in the team scope ``teams`` (or for
    ``gpu_model`` only: a catalogue key or an NVML name), with prices, commitments and cost models in force
    ``today``; five queries (six with node-level cost models), whatever the fleet's size.

    BuyRentError: an unknown ``gpu_model`` (not in fleet.catalog, the prices in force or the fleet's ledger), or
    a purchase or operations price without a ``gpu_model`` (they are prices of one model's GPU).
    """
    pct = Decimal(settings.BUY_VS_RENT_SAVINGS_PLAN_PCT if savings_plan_pct is None else savings_plan_pct)
    gpu_model = gpu_key(gpu_model.strip())  # an NVML name ("NVIDIA H100 80GB HBM3") means its catalogue key
    if not gpu_model and (what_if.purchase_usd_per_gpu is not None or what_if.ops_usd_per_gpu_year is not None):
        raise BuyRentError("gpu_model", "A purchase or operations price is for one GPU model: choose the model.")
    usage = model_usage_list(start=start, end=end, teams=teams)
    keys = [gpu_model] if gpu_model else sorted(usage, key=lambda k: (-usage[k].gpu_hours, k))
    answer = BuyRentAnswer(start=start, end=end, today=today, savings_plan_pct=pct)
    if not keys:
        return answer
    prices = list(InstancePrice.objects.filter(effective_from__lte=today, gpu_model__in=keys))
    offers = PriceBook(day=today, prices=prices, discounts=[]).offers()
    if gpu_model and gpu_model not in usage and gpu_model not in GPU_SPECS and not offers:
        raise BuyRentError(
            "gpu_model",
            f"Unknown GPU model {gpu_model!r}: not in the GPU catalogue, the instance prices or the fleet's ledger "
            f"of this window. Known models include {', '.join(sorted(GPU_SPECS))}.",
        )
    commitments = list(
        Commitment.objects.filter(start__lte=today, end__gt=today).for_teams(teams).select_related("provider")
    )
    names = {
        key: set(usage[key].nvml_names if key in usage else ())
        | ({GPU_SPECS[key].nvml_name} if key in GPU_SPECS else {key})
        for key in keys
    }
    fleet_costs = fleet_cost_models(day=today, start=start, end=end, names=names)
    for key in keys:
        fleet_cost, site = fleet_onprem_cost(*fleet_costs[key]) if key in fleet_costs else (None, None)
        answer.rows.append(
            buyrent_row(
                gpu_model=key,
                usage=usage.get(key, ModelUsage()),
                offers=offers,
                commitments=commitments,
                fleet_cost=fleet_cost,
                site=site,
                what_if=what_if,
                savings_plan_pct=pct,
            )
        )
    return answer
