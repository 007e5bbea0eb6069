"""Celery task of budget alerts (queue ``billing``)."""

from __future__ import annotations

from celery import shared_task

from billing import budgets


@shared_task(name="billing.tasks.budget_alerts_check")
def budget_alerts_check() -> int:
    """Send the budget alerts due this month (each once); return how many were attempted."""
    return len(budgets.budget_alerts_check())
