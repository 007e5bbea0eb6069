"""Background-process health: which of beat and the queue workers were seen recently."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.choices import HeartbeatComponent
from core.models import Heartbeat
from core.selectors import process_status_list
from core.services import heartbeat_record, heartbeat_schedule_sync

pytestmark = pytest.mark.django_db


def test_every_queue_has_an_editable_heartbeat_schedule(settings):
    tasks = {t.queue: t for t in PeriodicTask.objects.filter(task="core.tasks.heartbeat")}
    assert set(tasks) == set(settings.FLEETDECK_QUEUES)
    assert all(t.enabled and t.interval.every == settings.HEARTBEAT_INTERVAL_S for t in tasks.values())


def test_schedule_sync_keeps_admin_edits():
    task = PeriodicTask.objects.get(name="heartbeat: reports")
    task.enabled = False
    task.save()
    heartbeat_schedule_sync()
    assert not PeriodicTask.objects.get(name="heartbeat: reports").enabled


def test_fresh_and_stale_heartbeats(settings):
    heartbeat_record(component=HeartbeatComponent.BEAT, hostname="beat-host")
    heartbeat_record(component=HeartbeatComponent.WORKER, name="telemetry", hostname="w1")
    heartbeat_record(component=HeartbeatComponent.WORKER, name="inventory", hostname="w1")
    Heartbeat.objects.filter(name="inventory").update(
        last_seen=timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_AFTER_S + 1)
    )
    status = {s.label: s for s in process_status_list()}
    assert not status["Celery beat"].stale and status["Celery beat"].hostname == "beat-host"
    assert not status["Worker · telemetry queue"].stale
    assert status["Worker · inventory queue"].stale
    assert status["Worker · reports queue"].stale and status["Worker · reports queue"].last_seen is None


def test_heartbeat_record_is_an_upsert():
    heartbeat_record(component=HeartbeatComponent.BEAT)
    heartbeat_record(component=HeartbeatComponent.BEAT)
    assert Heartbeat.objects.filter(component="beat").count() == 1


def test_a_new_schedule_can_be_due_at_the_first_beat_tick():
    from django_celery_beat.schedulers import ModelEntry

    from core.services import periodic_task_ensure

    periodic_task_ensure(name="t: later", task="core.tasks.heartbeat", every_s=900, queue="billing")
    periodic_task_ensure(
        name="t: now", task="core.tasks.heartbeat", every_s=900, queue="billing", first_run_at_start=True
    )
    later = ModelEntry(PeriodicTask.objects.get(name="t: later"), app=None)
    now = ModelEntry(PeriodicTask.objects.get(name="t: now"), app=None)
    assert now.is_due().is_due
    assert not later.is_due().is_due  # beat counts a never-run entry as run at start: due in 15 minutes
