"""Celery tasks of the email reports (queue ``reports``): find due deliveries, send one delivery; and
``report_deliveries_enqueue``, which the task, the page and the API use to enqueue the deliveries the services
(billing.reports.delivery) created."""

from functools import partial

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from billing.reports.delivery import (
    REPORT_SEND_ERRORS,
    report_deliveries_due,
    report_deliveries_stale,
    report_delivery_send,
)

REPORT_DELIVER_MAX_RETRIES = 8


@shared_task(name="billing.tasks.report_send_due", ignore_result=True)
def report_send_due() -> list[int]:
    """Create the deliveries that are due (once per subscription and period) and enqueue them after commit."""
    now = timezone.now()
    with transaction.atomic():
        created = report_deliveries_due(now=now)
        report_deliveries_enqueue(delivery_ids=created + report_deliveries_stale(now=now))
    return created


@shared_task(
    name="billing.tasks.report_deliver",
    ignore_result=True,
    autoretry_for=REPORT_SEND_ERRORS,
    max_retries=REPORT_DELIVER_MAX_RETRIES,
    retry_backoff=60,
    retry_backoff_max=3600,
    retry_jitter=True,
)
def report_deliver(delivery_id: int) -> None:
    """Send one delivery (no-op once sent); every error is recorded on the row; SMTP and network errors are
    retried here with backoff, and report_send_due enqueues failed rows again later (report_deliveries_stale)."""
    report_delivery_send(delivery_id=delivery_id)


def report_deliveries_enqueue(*, delivery_ids: list[int]) -> None:
    """Enqueue ``report_deliver`` for each delivery once the current transaction commits."""
    for delivery_id in delivery_ids:
        transaction.on_commit(partial(report_deliver.delay, delivery_id))
