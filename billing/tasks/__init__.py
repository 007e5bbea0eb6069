"""Celery tasks of the billing app, one module per area; every task is named ``billing.tasks.<function>``
(routing: ``billing.tasks.report_*`` to the reports queue, the rest to the billing queue)."""

from billing.tasks import budgets, ledger, prices, reports

__all__ = ["budgets", "ledger", "prices", "reports"]
