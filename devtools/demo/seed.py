"""The whole demo seed in order: the fleet, its telemetry history, prices, ledger, budgets, a report and jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from django.utils import timezone

from devtools.demo.billing import (
    demo_budget_tighten,
    demo_ledger_seed,
    demo_prices_seed,
    demo_reports_seed,
    demo_team_budgets_seed,
)
from devtools.demo.history import demo_fleet_minute_seed, demo_telemetry_history_seed
from devtools.demo.scheduler import demo_quotas_seed, demo_scheduler_seed


def demo_history_billing_and_scheduler_seed(*, log: Callable[[str], object], now: datetime | None = None) -> None:
    """After the fleet: 30 days of telemetry roll-ups and 24 h of the fleet minute series, prices, the ledger,
    budgets (research's near its limit, the others well under), the weekly report and some jobs; each step is
    idempotent and tells ``log`` what it did. ``now`` (default: the clock) dates the history, ledger and budgets."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    history = demo_telemetry_history_seed(days=30, now=now)
    minutes = demo_fleet_minute_seed(hours=24, now=now)
    log(f"Telemetry history: {history} GPU-hours of synthetic roll-ups, {minutes} fleet minutes")
    prices = demo_prices_seed()
    log("Prices: " + ", ".join(f"{v} {k}" for k, v in prices.items()))
    ledger = demo_ledger_seed(days=30, now=now)
    log(f"Ledger: {ledger.rows} node-hours over {len(ledger.days)} days, {ledger.unpriced_count} nodes without a price")
    budgets = demo_team_budgets_seed(today=today)
    tight = demo_budget_tighten(today=today)
    log(f"Budgets: {len(budgets)} created" + (f"; {tight} is past its 80 % alert" if tight else ""))
    demo_reports_seed()
    scheduler = demo_scheduler_seed()
    log("Scheduler: " + ", ".join(f"{v} {k}" for k, v in scheduler.items()) + f", {demo_quotas_seed()} team quotas")
