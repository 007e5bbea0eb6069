"""Inventory Celery tasks: fan-out to one sync per enabled cloud provider, the beat entry, and sync runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.choices import RunStatus
from fleet.choices import ProviderKind
from fleet.inventory import runs, tasks
from fleet.models import InventoryScope, Node, SyncRun
from fleet.schedules import fleet_schedules_sync
from tests.factories import OnPremProviderFactory, ProviderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def gcp_provider(gce):
    gce.add_instance("ml-research-1", "us-central1-a", "a100-0", machine_type="a2-highgpu-1g")
    return ProviderFactory(kind=ProviderKind.GCP, account_id="ml-research-1", credential_ref="adc")


def test_sync_all_enqueues_enabled_cloud_providers_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    aws = ProviderFactory()
    gcp = ProviderFactory(kind=ProviderKind.GCP, account_id="ml-research-1", credential_ref="adc")
    ProviderFactory(enabled=False)
    OnPremProviderFactory()
    sent = []
    monkeypatch.setattr(tasks.inventory_sync_provider, "delay", sent.append)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.inventory_sync_all() == 2
    assert sent == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()
    assert sent == [aws.pk, gcp.pk]


def test_sync_provider_runs_the_service(gce):
    gce.add_instance("ml-research-1", "us-central1-a", "a100-0", machine_type="a2-highgpu-1g")
    provider = ProviderFactory(kind=ProviderKind.GCP, account_id="ml-research-1", credential_ref="adc")
    result = tasks.inventory_sync_provider.apply(args=[provider.pk]).get()
    assert result["provider"] == provider.name and result["scopes"][0]["nodes_seen"] == 1
    assert Node.objects.get().name == "a100-0"
    # A duplicate delivery changes nothing.
    again = tasks.inventory_sync_provider.apply(args=[provider.pk]).get()
    assert (again["scopes"][0]["created"], again["scopes"][0]["updated"]) == (0, 0)


def test_sync_provider_skips_disabled_deleted_and_onprem_providers(gce):
    disabled = ProviderFactory(kind=ProviderKind.GCP, account_id="ml-research-1", credential_ref="adc", enabled=False)
    assert tasks.inventory_sync_provider.apply(args=[disabled.pk]).get() is None
    assert tasks.inventory_sync_provider.apply(args=[OnPremProviderFactory().pk]).get() is None
    assert tasks.inventory_sync_provider.apply(args=[987654321]).get() is None
    assert gce.requests == []


def test_task_names_route_to_the_inventory_queue(settings):
    from config.celery import app

    for name in (
        "fleet.tasks.inventory_sync_all",
        "fleet.tasks.inventory_sync_provider",
        "fleet.tasks.inventory_sync_run",
    ):
        assert name in app.tasks
        assert app.amqp.router.route({}, name)["queue"].name == "inventory"


def test_beat_runs_the_inventory_sync(settings):
    PeriodicTask.objects.filter(name="inventory sync").delete()
    settings.INVENTORY_SYNC_INTERVAL_S = 300
    fleet_schedules_sync()
    entry = PeriodicTask.objects.get(name="inventory sync")
    assert (entry.task, entry.queue, entry.interval.every) == ("fleet.tasks.inventory_sync_all", "inventory", 300)


def test_sync_run_start_records_the_run_and_enqueues_it_after_commit(
    gcp_provider, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(tasks.inventory_sync_run, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = tasks.sync_run_start(provider=gcp_provider)
    assert (run.status, run.force, run.started_at, run.report) == (RunStatus.QUEUED, True, None, None)
    assert sent == []  # a worker must not look for a run the request has not committed
    for callback in callbacks:
        callback()
    assert sent == [run.pk]


def test_the_sync_run_task_syncs_and_records_the_report(gcp_provider):
    run = SyncRun.objects.create(provider=gcp_provider)
    tasks.inventory_sync_run.apply(args=[run.pk]).get()
    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.DONE, "")
    assert run.started_at <= run.finished_at
    assert run.report["ok"] is True and run.report["provider"] == gcp_provider.name
    assert run.report["scopes"][0]["created"] == 1 and Node.objects.get().name == "a100-0"


def test_a_sync_run_ignores_backoff_as_sync_now_always_did(gcp_provider, gce):
    InventoryScope.objects.create(
        provider=gcp_provider,
        scope="ml-research-1",
        consecutive_failures=2,
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )
    run = runs.sync_run_execute(SyncRun.objects.create(provider=gcp_provider).pk)
    assert run.status == RunStatus.DONE and run.report["scopes"][0]["skipped"] is False
    assert Node.objects.exists() and gce.requests


def test_a_finished_or_running_run_delivered_again_is_left_and_a_stale_one_is_run_again(gcp_provider, gce):
    done = SyncRun.objects.create(
        provider=gcp_provider, status=RunStatus.DONE, report={"provider": "x", "ok": True, "scopes": []}
    )
    assert runs.sync_run_execute(done.pk) is None
    assert runs.sync_run_execute(987654321) is None
    done.refresh_from_db()
    assert done.report["provider"] == "x" and gce.requests == []
    # A run another worker is running now is not run twice by a second delivery of its message.
    busy = SyncRun.objects.create(provider=gcp_provider, status=RunStatus.RUNNING, started_at=timezone.now())
    assert runs.sync_run_execute(busy.pk) is None and gce.requests == []
    # A worker that died mid-run leaves it running past the task's time limit; the redelivered message runs it.
    started = timezone.now() - runs.SYNC_RUN_STALE_AFTER - timedelta(seconds=1)
    orphan = SyncRun.objects.create(provider=gcp_provider, status=RunStatus.RUNNING, started_at=started)
    assert runs.sync_run_execute(orphan.pk).status == RunStatus.DONE


def test_a_run_of_a_provider_disabled_since_it_was_asked_for_fails_without_syncing(gcp_provider, gce):
    run = SyncRun.objects.create(provider=gcp_provider)
    gcp_provider.enabled = False
    gcp_provider.save()
    run = runs.sync_run_execute(run.pk)
    assert (run.status, run.error, run.report) == (
        RunStatus.FAILED,
        "The provider was disabled before it synced.",
        None,
    )
    assert run.finished_at is not None and gce.requests == []


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (SoftTimeLimitExceeded(), "Stopped by the sync task's time limit."),
        (RuntimeError("database went away"), "RuntimeError: database went away"),
    ],
)
def test_a_run_the_sync_cannot_finish_fails_with_the_reason(gcp_provider, monkeypatch, raised, error):
    def broken_sync(**kwargs):
        raise raised

    monkeypatch.setattr(runs, "inventory_sync", broken_sync)
    run = runs.sync_run_execute(SyncRun.objects.create(provider=gcp_provider).pk)
    run.refresh_from_db()
    assert (run.status, run.error, run.report) == (RunStatus.FAILED, error, None)
    assert run.finished_at is not None
