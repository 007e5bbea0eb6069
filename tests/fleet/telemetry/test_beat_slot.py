"""A poll's slot is the time beat scheduled it, however late the broker delivers it.

Beat's scheduler sends the real "telemetry poll" entry through the configured broker; the message is then run
the way a worker runs it (celery.worker.request.Request), a little past the next slot boundary.
"""

import uuid
from datetime import datetime, timedelta

import pytest
from celery.worker.request import Request
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from core.beat import SCHEDULED_AT_HEADER, HeartbeatDatabaseScheduler
from fleet.schedules import fleet_schedules_sync
from fleet.tasks import telemetry_poll_all
from fleet.telemetry.poll import poll_slot
from tests.factories import GPUFactory, NodeFactory
from tests.fleet.telemetry.conftest import dcgm_text

# Beat's scheduler commits and closes old connections itself, as it does in production: no test transaction.
pytestmark = pytest.mark.django_db(transaction=True)
UUID = "GPU-a0000000-0000-0000-0000-000000000001"


@pytest.fixture
def polled_gpu(exporter):
    node = NodeFactory(telemetry_url=exporter.url("n1"))
    exporter.bodies["n1"] = dcgm_text([{"uuid": UUID, "index": 0, "util": 87, "power": 612.5}])
    return GPUFactory(node=node, index=0, uuid=UUID)


def sample_slots(gpu_id: int) -> list:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ts FROM fleet_gpu_sample WHERE gpu_id = %s", [gpu_id])
        return [row[0] for row in cursor.fetchall()]


def beat_sends_poll_due_at(due_at) -> dict:
    """Have beat send the telemetry poll entry as due at ``due_at``; return the message as the broker holds it."""
    fleet_schedules_sync()
    queue = f"test-beat-{uuid.uuid4().hex[:8]}"  # of its own, so no other consumer can take the message
    interval = timedelta(seconds=PeriodicTask.objects.get(name="telemetry poll").interval.every)
    PeriodicTask.objects.filter(name="telemetry poll").update(queue=queue, last_run_at=due_at - interval)
    scheduler = HeartbeatDatabaseScheduler(app=celery_app)
    entry = scheduler.schedule["telemetry poll"]
    assert entry.is_due().is_due
    scheduler.reserve(entry)  # what tick() does with a due entry before it applies it
    scheduler.apply_entry(entry, producer=scheduler.producer)
    with celery_app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            message = simple.get(timeout=10)
            message.ack()
        finally:
            simple.close()
    return message


def worker_runs(message) -> None:
    """Run the tick the way a worker does, then the shard tasks it enqueued on the telemetry queue."""
    Request(message, app=celery_app, task=celery_app.tasks[message.headers["task"]]).execute()
    shards_run()


def shards_run() -> int:
    """Run every scrape shard message waiting on the telemetry queue as a worker would; return how many ran."""
    ran = 0
    with celery_app.connection_for_read() as conn:
        simple = conn.SimpleQueue("telemetry")
        try:
            while True:
                try:
                    message = simple.get(timeout=1)
                except simple.Empty:
                    return ran
                message.ack()
                if message.headers["task"] == "fleet.tasks.telemetry_poll_shard":
                    Request(message, app=celery_app, task=celery_app.tasks[message.headers["task"]]).execute()
                    ran += 1
        finally:
            simple.close()


def test_a_poll_delivered_late_stores_its_samples_in_the_scheduled_slot(polled_gpu, settings):
    # An hour's interval, so however slowly a loaded machine gets from beat's send to the worker's run (CI took
    # 15 s once), the run stays within one interval of its scheduled time and the scheduled slot is used.
    settings.TELEMETRY_POLL_INTERVAL_S = 3600
    now = timezone.now()
    due_at = poll_slot(now) - timedelta(seconds=1)  # due just before the boundary, run after it
    message = beat_sends_poll_due_at(due_at)
    sent = datetime.fromisoformat(message.headers[SCHEDULED_AT_HEADER])
    assert abs((sent - due_at).total_seconds()) < 0.1
    worker_runs(message)
    assert sample_slots(polled_gpu.pk) == [poll_slot(due_at)]
    assert poll_slot(due_at) < poll_slot(timezone.now())


def test_a_scheduled_time_older_than_one_interval_falls_back_to_now(polled_gpu, settings):
    message = beat_sends_poll_due_at(timezone.now() - timedelta(minutes=30))  # beat was down for a while
    before = poll_slot(timezone.now())
    worker_runs(message)
    assert sample_slots(polled_gpu.pk)[0] >= before


def test_a_poll_without_a_scheduled_time_uses_now(polled_gpu):
    before = poll_slot(timezone.now())
    telemetry_poll_all.apply()
    assert shards_run() == 1
    assert sample_slots(polled_gpu.pk)[0] >= before
