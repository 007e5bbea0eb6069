"""Buy vs rent's figures: the assumptions used when the fleet has no figure, the what-if bounds, and the
dataclasses of the answer (billing.buyrent). No query here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing.models import OnPremCostModel
from billing.selectors import EARLIEST_DAY

ZERO, ONE, HUNDRED = Decimal(0), Decimal(1), Decimal(100)
USD_PLACES = Decimal("0.000001")
WINDOW_DAYS = 30
# Assumptions, used only when the fleet has no figure; each one used is named in the row's notes.
ASSUMED_AMORTISATION_MONTHS = 48
ASSUMED_OPS_USD_PER_GPU_YEAR = ZERO
ASSUMED_PUE = Decimal("1.5")  # about the industry's average (Uptime Institute surveys: 1.5-1.6)
ASSUMED_USD_PER_KWH = Decimal("0.10")
# What-if bounds, shared by the page's form and the API.
AMORTISATION_MONTHS_MAX = 240  # OnPremCostModel's bound
USD_PER_GPU_MAX = Decimal("9999999999.99")  # OnPremCostModel's 12 digits, 2 decimals
USD_PER_KWH_MAX = Decimal(10)
# A what-if number as a person types it: ASCII digits, an optional fraction and minus sign; no exponent, NaN, "+"
# or other scripts' digits (which Decimal() would read). The page's form and the API both refuse anything else.
PLAIN_NUMBER = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")


class BuyRentError(ValueError):
    """Input the answer cannot be given for; ``field`` names the parameter."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class WhatIf:
    """Figures a person types in to replace the fleet's (None: use the fleet's). Utilisation in percent."""

    purchase_usd_per_gpu: Decimal | None = None
    amortisation_months: int | None = None
    ops_usd_per_gpu_year: Decimal | None = None
    utilisation_pct: Decimal | None = None
    usd_per_kwh: Decimal | None = None


NO_WHAT_IF = WhatIf()


@dataclass(frozen=True)
class ModelUsage:
    """What the fleet's GPUs of one model did in the window, from LedgerDay."""

    gpu_hours: Decimal = ZERO
    idle_gpu_hours: Decimal = ZERO
    onprem_gpu_hours: Decimal = ZERO
    onprem_idle_gpu_hours: Decimal = ZERO
    onprem_energy_kwh: Decimal = ZERO
    nvml_names: frozenset[str] = frozenset()

    @property
    def utilisation(self) -> Decimal | None:
        """1 − idle / GPU-hours (a fraction); None without GPU-hours."""
        if self.gpu_hours <= 0:
            return None
        return ONE - min(self.idle_gpu_hours, self.gpu_hours) / self.gpu_hours

    @property
    def onprem_used_gpu_hours(self) -> Decimal:
        """On-prem GPU-hours that were not idle."""
        return max(ZERO, self.onprem_gpu_hours - self.onprem_idle_gpu_hours)

    @property
    def kwh_per_used_gpu_hour(self) -> Decimal | None:
        """Measured kWh (PUE included) of the on-prem GPUs per used on-prem GPU-hour, their idle draw included;
        None without a measurement (no energy, or no used hour)."""
        used = self.onprem_used_gpu_hours
        if used <= 0 or self.onprem_energy_kwh <= 0:
            return None
        return self.onprem_energy_kwh / used


@dataclass(frozen=True)
class CloudPrice:
    """A $/GPU-hour to rent the model, and where it comes from: "list", "commitment" or "assumption"."""

    usd_per_gpu_hour: Decimal
    basis: str
    provider_kind: str = ""
    region: str = ""
    instance_type: str = ""
    commitment: str = ""  # the commitment's name
    discount_pct: Decimal | None = None


@dataclass(frozen=True)
class OnPremCost:
    """What owning one GPU of the model costs: the fleet's cost model, or what-if figures ("cost-model"/"what-if")."""

    purchase_usd_per_gpu: Decimal
    amortisation_months: int
    ops_usd_per_gpu_year: Decimal
    basis: str
    cost_model_id: int | None = None
    site: str = ""
    effective_from: date | None = None
    covered_gpu_hours: Decimal = ZERO  # the fleet's owned GPU-hours of the model in the window it covers

    @property
    def usd_per_owned_gpu_hour(self) -> Decimal:
        """Amortisation + operations per owned GPU-hour: the ledger's formula (OnPremCostModel.usd_per_gpu_hour)."""
        return OnPremCostModel(
            purchase_usd_per_gpu=self.purchase_usd_per_gpu,
            amortisation_months=self.amortisation_months,
            ops_usd_per_gpu_year=self.ops_usd_per_gpu_year,
        ).usd_per_gpu_hour


@dataclass(frozen=True)
class Energy:
    """Energy of one used GPU-hour: kWh ("measured"/"estimated"/"unknown") × $/kWh ("what-if"/"site"/"assumption")."""

    kwh_per_gpu_hour: Decimal
    kwh_basis: str
    usd_per_kwh: Decimal
    price_basis: str

    @property
    def usd_per_gpu_hour(self) -> Decimal:
        """$ of the energy of one used GPU-hour: kWh × $/kWh."""
        return self.kwh_per_gpu_hour * self.usd_per_kwh


@dataclass(frozen=True)
class BreakEven:
    """Owning against one cloud price: the break-even utilisation and months (None: never, or not known)."""

    versus: str  # "on-demand", "spot" or "commitments"
    cloud_usd_per_gpu_hour: Decimal
    utilisation: Decimal | None  # fraction
    onprem_cheaper: bool | None  # at the row's utilisation; None without one
    saving_usd_per_month: Decimal | None  # per GPU, at the row's utilisation
    months: Decimal | None

    @property
    def utilisation_pct(self) -> Decimal | None:
        """The break-even utilisation in percent."""
        return None if self.utilisation is None else self.utilisation * HUNDRED


@dataclass(frozen=True)
class BuyRentRow:
    """Buy vs rent for one GPU model."""

    gpu_model: str
    usage: ModelUsage
    utilisation: Decimal | None  # the one used: what-if, else measured (fraction)
    utilisation_basis: str  # "what-if", "measured" or "" (none)
    on_demand: CloudPrice | None
    spot: CloudPrice | None
    committed: CloudPrice | None
    onprem: OnPremCost | None
    energy: Energy
    onprem_usd_per_used_gpu_hour: Decimal | None
    break_even: tuple[BreakEven, ...]
    notes: tuple[str, ...] = ()

    @property
    def measured_utilisation_pct(self) -> Decimal | None:
        """The fleet's measured utilisation of the model in percent (None: no GPU-hours)."""
        u = self.usage.utilisation
        return None if u is None else u * HUNDRED

    @property
    def utilisation_pct(self) -> Decimal | None:
        """The utilisation compared (what-if, else measured) in percent."""
        return None if self.utilisation is None else self.utilisation * HUNDRED

    @property
    def onprem_usd_per_owned_gpu_hour(self) -> Decimal | None:
        """B: amortisation + operations per owned GPU-hour (None without an owning cost)."""
        return None if self.onprem is None else self.onprem.usd_per_owned_gpu_hour

    def versus(self, name: str) -> BreakEven | None:
        """The break-even against "on-demand", "spot" or "commitments"."""
        return next((b for b in self.break_even if b.versus == name), None)

    @property
    def versus_on_demand(self) -> BreakEven | None:
        """The break-even against the on-demand price."""
        return self.versus("on-demand")

    @property
    def versus_spot(self) -> BreakEven | None:
        """The break-even against the spot price."""
        return self.versus("spot")

    @property
    def versus_commitments(self) -> BreakEven | None:
        """The break-even against the committed price."""
        return self.versus("commitments")


@dataclass(frozen=True)
class BuyRentAnswer:
    """Buy vs rent for every GPU model of the fleet (or one) over ``[start, end)``."""

    start: date
    end: date
    today: date
    savings_plan_pct: Decimal
    rows: list[BuyRentRow] = field(default_factory=list)

    @property
    def last_day(self) -> date:
        """The window's last day (inclusive)."""
        return self.end - timedelta(days=1)


def usd6(value: Decimal) -> Decimal:
    """``value`` rounded half up to 6 decimals, as prices are kept."""
    return value.quantize(USD_PLACES, rounding=ROUND_HALF_UP)


def window_resolve(*, first: date | None, last: date | None, today: date) -> tuple[date, date]:
    """The window's first and last UTC days from what was given: by default the WINDOW_DAYS days up to today
    (or up to ``last``); check the result with ``billing.selectors.period_errors``."""
    if last is None:
        last = max(today, first) if first else today
    if first is None:
        earliest = EARLIEST_DAY + timedelta(days=WINDOW_DAYS - 1)
        first = last - timedelta(days=WINDOW_DAYS - 1) if last >= earliest else EARLIEST_DAY
    return first, last


def utilisation_problem(value: Decimal) -> str | None:
    """Why a what-if utilisation (percent) is refused, or None."""
    if not ZERO < value <= HUNDRED:
        return "Give a utilisation above 0 % and at most 100 %."
    return None
