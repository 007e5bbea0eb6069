"""Buy vs rent per GPU model: what an owned GPU costs per hour of work at the fleet's measured utilisation, against
renting the same GPU in the cloud (on-demand, spot, with commitments), and where the two break even.

Inputs, for a window of UTC days ``[start, end)`` (default: the last 30 days) within a team scope:

- **utilisation** u = 1 − Σ idle GPU-hours / Σ GPU-hours of the model's ``LedgerDay`` rows (every provider: the
  fleet's GPUs of that model, owned and rented; NVML names merged by catalogue key), or a what-if u.
- **cloud $/GPU-hour** P: the cheapest list price in force today of any instance type carrying the model, whole
  instance $/h ÷ its GPU count, over every region (which one is reported); on-demand and spot separately. The
  row in force follows ``billing.rates.PriceBook`` (an override, then the latest day, then the Price List over
  the catalogue). Account discounts (``Discount``) are not applied: they belong to one account.
- **with commitments** P_c: the lowest $/GPU-hour of the commitments in force today (start ≤ today < end, in the
  team scope) that cover the model: count basis (reserved instances) ``rate_usd_per_h`` ÷ the GPUs of its
  instance type; spend basis (savings plans) the cheapest eligible on-demand $/GPU-hour × (1 − discount_pct/100).
  Without one: the cheapest on-demand × (1 − s/100), s = ``settings.BUY_VS_RENT_SAVINGS_PLAN_PCT`` (default 30,
  a typical 1-year no-upfront savings plan), labelled as an assumption.
- **owning** B, $ per owned GPU-hour = purchase / (months × 730) + operations per GPU-year / 8,760: the formula
  the ledger charges (``OnPremCostModel.usd_per_gpu_hour``), from the cost model in force today that covers most
  of the fleet's owned GPUs of the model (per GPU, the ledger's precedence: its node's own model, else its site's
  model for its NVML name, else its site's model for any GPU), or a what-if purchase price (months and
  operations then from that model, or what-if, or assumed: 48 months, $0).
- **energy per used GPU-hour** E = k × p: k kWh per used GPU-hour, PUE included, measured as Σ energy_kwh /
  Σ (GPU-hours − idle GPU-hours) of the model's on-prem ``LedgerDay`` rows (the ledger's kWh: telemetry
  ``energy_wh`` × the site's PUE; the idle GPUs' draw is so carried by the used hours), else estimated as the
  power limit × 0.7 (``billing.rates.POWER_LIMIT_SHARE``) × the site's PUE (1.5 assumed without a site); p $/kWh:
  what-if, else the cost model's site's electricity price, else $0.10 assumed.

Formulas:

- on-prem $ per used GPU-hour: C(u) = B / u + E (owned hours are paid whether the GPU works or idles);
- break-even utilisation against a cloud price P (on-demand, spot and committed each): C(u*) = P, so
  u* = B / (P − E); "never" when P ≤ E or u* > 100 %;
- monthly saving per GPU at u: S = u × 730 × (P − E) − operations / 12 (the rent of the hours worked, less what
  owning costs besides the purchase);
- break-even months: purchase / S; "never" when renting is cheaper, C(u) ≥ P (the same as purchase / S ≥ months).

The package is split by role: ``figures`` (assumptions, bounds, the answer's dataclasses), ``compute`` (the
arithmetic, no query) and ``reads`` (the queries and ``buy_vs_rent``); import from ``billing.buyrent``.
"""

from billing.buyrent.compute import (
    break_even_figure,
    buyrent_row,
    cloud_price_cheapest,
    commitment_prices,
    committed_price,
    energy_resolve,
    onprem_cost_resolve,
    onprem_usd_per_used_gpu_hour,
)
from billing.buyrent.figures import (
    AMORTISATION_MONTHS_MAX,
    ASSUMED_AMORTISATION_MONTHS,
    ASSUMED_OPS_USD_PER_GPU_YEAR,
    ASSUMED_PUE,
    ASSUMED_USD_PER_KWH,
    NO_WHAT_IF,
    PLAIN_NUMBER,
    USD_PER_GPU_MAX,
    USD_PER_KWH_MAX,
    WINDOW_DAYS,
    BreakEven,
    BuyRentAnswer,
    BuyRentError,
    BuyRentRow,
    CloudPrice,
    Energy,
    ModelUsage,
    OnPremCost,
    WhatIf,
    usd6,
    utilisation_problem,
    window_resolve,
)
from billing.buyrent.reads import (
    buy_vs_rent,
    fleet_cost_models,
    fleet_onprem_cost,
    model_usage_list,
)

__all__ = [
    "AMORTISATION_MONTHS_MAX",
    "ASSUMED_AMORTISATION_MONTHS",
    "ASSUMED_OPS_USD_PER_GPU_YEAR",
    "ASSUMED_PUE",
    "ASSUMED_USD_PER_KWH",
    "BreakEven",
    "BuyRentAnswer",
    "BuyRentError",
    "BuyRentRow",
    "CloudPrice",
    "Energy",
    "ModelUsage",
    "NO_WHAT_IF",
    "PLAIN_NUMBER",
    "OnPremCost",
    "USD_PER_GPU_MAX",
    "USD_PER_KWH_MAX",
    "WINDOW_DAYS",
    "WhatIf",
    "break_even_figure",
    "buy_vs_rent",
    "buyrent_row",
    "cloud_price_cheapest",
    "commitment_prices",
    "committed_price",
    "energy_resolve",
    "fleet_cost_models",
    "fleet_onprem_cost",
    "model_usage_list",
    "onprem_cost_resolve",
    "onprem_usd_per_used_gpu_hour",
    "usd6",
    "utilisation_problem",
    "window_resolve",
]
