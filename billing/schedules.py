"""The billing app's beat schedule entries (created if missing; editable in the admin afterwards)."""

from core.services import periodic_task_ensure

REPORT_SEND_DUE_INTERVAL_S = 15 * 60
PRICES_REFRESH_INTERVAL_S = 7 * 24 * 3600
BUDGET_ALERTS_INTERVAL_S = 3600
LEDGER_UPDATE_INTERVAL_S = 300
COSTS_IMPORT_INTERVAL_S = 24 * 3600


def billing_schedules_sync() -> None:
    """Ensure beat runs the billing app's periodic tasks."""
    # Reports: every 15 min; a period's report is created once, so the interval only sets how soon.
    periodic_task_ensure(
        name="reports: send due",
        task="billing.tasks.report_send_due",
        every_s=REPORT_SEND_DUE_INTERVAL_S,
        queue="reports",
        description="Creates each subscription's report delivery once its week or month has ended, and sends it.",
        first_run_at_start=True,
    )
    # Prices: weekly AWS Price List refresh; list prices change rarely (the last cut: June 2025).
    periodic_task_ensure(
        name="prices: AWS price list refresh",
        task="billing.tasks.prices_refresh",
        every_s=PRICES_REFRESH_INTERVAL_S,
        queue="billing",
        description="Fetches AWS on-demand prices (pricing.get_products) for the regions of the AWS sites.",
    )
    # Budgets: hourly, as the ledger's days grow; each alert goes out once per month.
    periodic_task_ensure(
        name="budgets: alerts check",
        task="billing.tasks.budget_alerts_check",
        every_s=BUDGET_ALERTS_INTERVAL_S,
        queue="billing",
        description="Emails each budget's recipients once per threshold (and forecast over) per month.",
        first_run_at_start=True,
    )
    # Ledger: the last two complete hours and the current one every 5 min; Cost Explorer daily.
    periodic_task_ensure(
        name="ledger: update",
        task="billing.tasks.ledger_update",
        every_s=LEDGER_UPDATE_INTERVAL_S,
        queue="billing",
        description="Recomputes the hourly cost ledger of the last two hours and the current one, and their days.",
        first_run_at_start=True,
    )
    periodic_task_ensure(
        name="costs: AWS Cost Explorer import",
        task="billing.tasks.costs_import",
        every_s=COSTS_IMPORT_INTERVAL_S,
        queue="billing",
        description="Imports what AWS billed per day (and its data transfer) for reconciliation against the ledger.",
    )
