"""Celery tasks of the cloud inventory (queue ``inventory``, by the ``fleet.tasks.inventory_`` name prefix)."""

from functools import partial

from celery import shared_task
from django.db import transaction

from fleet.choices import ProviderKind
from fleet.inventory.runs import SYNC_SOFT_TIME_LIMIT_S, SYNC_TIME_LIMIT_S, sync_run_execute, sync_run_request
from fleet.inventory.sync import inventory_sync
from fleet.models import Provider, SyncRun


@shared_task(name="fleet.tasks.inventory_sync_all", ignore_result=True)
def inventory_sync_all() -> int:
    """Enqueue one sync per enabled cloud provider (beat runs this every INVENTORY_SYNC_INTERVAL_S)."""
    provider_ids = list(
        Provider.objects.filter(enabled=True, kind__in=(ProviderKind.AWS, ProviderKind.GCP))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for provider_id in provider_ids:
        transaction.on_commit(partial(inventory_sync_provider.delay, provider_id))
    return len(provider_ids)


@shared_task(
    name="fleet.tasks.inventory_sync_provider",
    soft_time_limit=SYNC_SOFT_TIME_LIMIT_S,
    time_limit=SYNC_TIME_LIMIT_S,
)
def inventory_sync_provider(provider_id: int) -> dict | None:
    """Sync one provider's cloud inventory; a disabled or deleted provider, or an on-prem one, is skipped."""
    provider = Provider.objects.filter(pk=provider_id, enabled=True).first()
    if provider is None or provider.kind not in (ProviderKind.AWS, ProviderKind.GCP):
        return None
    # Cloud errors are recorded per scope with backoff by the service, so nothing here is worth a retry.
    return inventory_sync(provider=provider).as_dict()


@shared_task(
    name="fleet.tasks.inventory_sync_run",
    ignore_result=True,
    soft_time_limit=SYNC_SOFT_TIME_LIMIT_S,
    time_limit=SYNC_TIME_LIMIT_S,
)
def inventory_sync_run(run_id: int) -> None:
    """Run a sync asked for through the API (a SyncRun) and record its report on the run."""
    sync_run_execute(run_id)


@transaction.atomic
def sync_run_start(*, provider: Provider) -> SyncRun:
    """A sync of ``provider`` that ignores backoff: the one already queued or running, or a new one enqueued once
    the transaction commits (so a client posting in a loop never piles up overlapping syncs)."""
    run, created = sync_run_request(provider=provider)
    if created:
        transaction.on_commit(partial(inventory_sync_run.delay, run.pk))
    return run
