"""Celery tasks of the cost ledger and the Cost Explorer import (queue ``billing``)."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from functools import partial

from botocore.exceptions import BotoCoreError, ClientError
from celery import shared_task
from django.db import transaction
from django.utils import timezone

from billing import ledger
from billing.costexplorer import cost_explorer_import
from billing.ledger import HOUR, LedgerReport, hour_floor, ledger_compute
from fleet.choices import ProviderKind
from fleet.models import Provider

logger = logging.getLogger(__name__)
# Roll-ups of an hour may arrive late (a node polled after a gap), so the last two complete hours are redone.
LEDGER_UPDATE_HOURS_BACK = 2
# Cost Explorer revises recent days for a while; every import fetches these complete days again.
COSTS_IMPORT_DAYS = 3
LEDGER_TIME_LIMIT_S = 3600
COSTS_TIME_LIMIT_S = 300


def _warn_unpriced(report: LedgerReport) -> None:
    if report.unpriced_count:
        names = ", ".join(name for _, name in report.unpriced_nodes[:20])
        logger.warning(
            "ledger %s–%s: %d node(s) have no price or cost model and were booked at $0: %s",
            report.start.isoformat(),
            report.end.isoformat(),
            report.unpriced_count,
            names,
        )


@shared_task(name="billing.tasks.ledger_update", ignore_result=True, soft_time_limit=240, time_limit=300)
def ledger_update() -> dict:
    """Recompute the last two complete hours and the current partial one (beat, every 5 minutes)."""
    now = timezone.now()
    current = hour_floor(now)
    report = ledger_compute(start=current - LEDGER_UPDATE_HOURS_BACK * HOUR, end=current + HOUR, now=now)
    _warn_unpriced(report)
    return report.as_dict()


@shared_task(
    name="billing.tasks.ledger_backfill", soft_time_limit=LEDGER_TIME_LIMIT_S, time_limit=LEDGER_TIME_LIMIT_S + 60
)
def ledger_backfill(start: str, end: str, node_ids: list[int] | None = None) -> dict:
    """Recompute the ledger for the UTC days [start, end] (ISO dates), one day per transaction."""
    report = ledger.ledger_backfill(start=date.fromisoformat(start), end=date.fromisoformat(end), node_ids=node_ids)
    _warn_unpriced(report)
    return report.as_dict()


@shared_task(name="billing.tasks.costs_import", ignore_result=True)
def costs_import() -> int:
    """Enqueue a Cost Explorer import for every enabled AWS provider (beat, daily)."""
    ids = list(Provider.objects.filter(enabled=True, kind=ProviderKind.AWS).order_by("pk").values_list("pk", flat=True))
    for provider_id in ids:
        transaction.on_commit(partial(costs_import_provider.delay, provider_id))
    return len(ids)


@shared_task(
    name="billing.tasks.costs_import_provider",
    autoretry_for=(ClientError, BotoCoreError),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=COSTS_TIME_LIMIT_S,
    time_limit=COSTS_TIME_LIMIT_S + 30,
)
def costs_import_provider(provider_id: int) -> dict | None:
    """Import the last few complete days of one AWS account's billed cost and data transfer."""
    provider = Provider.objects.filter(pk=provider_id, enabled=True, kind=ProviderKind.AWS).first()
    if provider is None:
        return None
    today = timezone.now().date()
    return cost_explorer_import(provider=provider, start=today - timedelta(days=COSTS_IMPORT_DAYS), end=today).as_dict()
