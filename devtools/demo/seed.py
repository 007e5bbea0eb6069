"""The whole demo seed in order: the fleet, its telemetry history, prices, ledger, budgets, a report and jobs."""

from __future__ import annotations

from collections.abc import Callable

from devtools.demo.billing import (
    demo_budget_tighten,
    demo_budgets_seed,
    demo_ledger_seed,
    demo_prices_seed,
    demo_reports_seed,
)
from devtools.demo.fleet import demo_telemetry_history_seed
from devtools.demo.scheduler import demo_scheduler_seed


def demo_history_billing_and_scheduler_seed(*, log: Callable[[str], object]) -> None:
    """After the fleet: 30 days of telemetry roll-ups, prices, the ledger, budgets (one at 85 % already), the
    weekly report and some jobs; each step is idempotent and tells ``log`` what it did."""
    history = demo_telemetry_history_seed(days=30)
    log(f"Telemetry history: {history} GPU-hours of synthetic roll-ups")
    prices = demo_prices_seed()
    log("Prices: " + ", ".join(f"{v} {k}" for k, v in prices.items()))
    ledger = demo_ledger_seed(days=30)
    log(f"Ledger: {ledger.rows} node-hours over {len(ledger.days)} days, {ledger.unpriced_count} nodes without a price")
    budgets = demo_budgets_seed()
    tight = demo_budget_tighten()
    log(f"Budgets: {len(budgets)} created" + (f"; {tight} is at 85 % already" if tight else ""))
    demo_reports_seed()
    scheduler = demo_scheduler_seed()
    log("Scheduler: " + ", ".join(f"{v} {k}" for k, v in scheduler.items()))
