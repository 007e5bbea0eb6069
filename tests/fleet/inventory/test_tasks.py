"""Inventory Celery tasks: fan-out to one sync per enabled cloud provider, and the beat entry."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from fleet.choices import ProviderKind
from fleet.inventory import tasks
from fleet.models import Node
from fleet.schedules import fleet_schedules_sync
from tests.factories import OnPremProviderFactory, ProviderFactory

pytestmark = pytest.mark.django_db


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

    for name in ("fleet.tasks.inventory_sync_all", "fleet.tasks.inventory_sync_provider"):
        assert name in app.tasks
        assert app.amqp.router.route({}, name)["queue"].name == "inventory"


def test_beat_runs_the_inventory_sync(settings):
    PeriodicTask.objects.filter(name="inventory sync").delete()
    settings.INVENTORY_SYNC_INTERVAL_S = 300
    fleet_schedules_sync()
    entry = PeriodicTask.objects.get(name="inventory sync")
    assert (entry.task, entry.queue, entry.interval.every) == ("fleet.tasks.inventory_sync_all", "inventory", 300)
