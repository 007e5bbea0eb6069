"""Scrape shards: the tick splits nodes by a stable hash and enqueues one task per shard on the real broker; a
worker runs each message (celery.worker.request.Request); a failed shard is retried once and counts nothing
twice; the same shard of the same slot never runs twice; every run lands in the source health rows."""

from datetime import timedelta

import psycopg
import pytest
from celery.worker.request import Request
from django.db import OperationalError, connection
from django.utils import timezone

from config.celery import app as celery_app
from fleet.choices import TelemetrySourceKind
from fleet.models import GPU, Node, TelemetrySourceHealth
from fleet.tasks import telemetry_poll_all
from fleet.telemetry import poll as poll_module
from fleet.telemetry import shards as shards_module
from fleet.telemetry.report import poll_slot
from fleet.telemetry.shards import _lock_key, shard_count, shard_of, shard_poll, shards_plan
from tests.factories import GPUFactory, NodeFactory
from tests.fleet.telemetry.conftest import dcgm_text

# Worker-side task execution commits as a worker does: no test transaction around it.
pytestmark = pytest.mark.django_db(transaction=True)
SHARD_TASK = "fleet.tasks.telemetry_poll_shard"


def uuid_of(i: int) -> str:
    return f"GPU-b0000000-0000-0000-0000-{i:012d}"


@pytest.fixture
def fleet(exporter):
    """Five nodes of one GPU each, all answering."""
    nodes = []
    for i in range(5):
        node = NodeFactory(telemetry_url=exporter.url(f"n{i}"))
        exporter.bodies[f"n{i}"] = dcgm_text([{"uuid": uuid_of(i), "index": 0, "util": 50 + i, "power": 300}])
        GPUFactory(node=node, index=0, uuid=uuid_of(i))
        nodes.append(node)
    return nodes


@pytest.fixture
def queue():
    """The telemetry queue on the configured broker, emptied before and after the test."""

    def drain() -> list:
        messages = []
        with celery_app.connection_for_read() as conn:
            simple = conn.SimpleQueue("telemetry")
            try:
                while True:
                    try:
                        message = simple.get(timeout=1.5)  # a retry is sent with a 1 s countdown
                    except simple.Empty:
                        return messages
                    message.ack()
                    messages.append(message)
            finally:
                simple.close()

    drain()
    yield drain
    drain()


def run(message) -> None:
    Request(message, app=celery_app, task=celery_app.tasks[message.headers["task"]]).execute()


def sample_rows() -> list[tuple]:
    """This test's samples (the partitioned sample table is not emptied between transactional tests)."""
    gpu_ids = list(GPU.objects.values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT gpu_id, ts FROM fleet_gpu_sample WHERE gpu_id = ANY(%s) ORDER BY gpu_id", [gpu_ids])
        return cursor.fetchall()


def health(name: str) -> TelemetrySourceHealth:
    return TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.SCRAPE_SHARD, name=name)


def test_the_hash_is_stable_in_range_and_moves_few_nodes_when_shards_are_added():
    ids = range(1, 20_001)
    assert [shard_of(pk, 7) for pk in range(1, 50)] == [shard_of(pk, 7) for pk in range(1, 50)]
    assert {shard_of(pk, 7) for pk in ids} == set(range(7))
    moved = sum(shard_of(pk, 20) != shard_of(pk, 21) for pk in ids)
    assert moved < len(ids) * 0.08  # about 1/21 of them, not nearly all as with a modulo
    assert shard_of(12345, 1) == 0


def test_shard_count_follows_the_shard_size(settings):
    settings.TELEMETRY_SHARD_SIZE = 500
    assert [shard_count(n) for n in (0, 1, 500, 501, 10_000)] == [1, 1, 1, 2, 20]
    settings.TELEMETRY_SHARD_SIZE = 0  # a misconfiguration still makes shards, not a division by zero
    assert shard_count(3) == 3
    settings.TELEMETRY_SHARD_SIZE = 100
    plan = shards_plan(range(1, 1001))
    assert len(plan) == 10
    assert sorted(pk for shard in plan for pk in shard) == list(range(1, 1001))
    assert all(40 < len(shard) < 160 for shard in plan)


def test_the_tick_enqueues_one_task_per_shard_for_one_slot_and_each_stores_into_it(fleet, queue, settings):
    settings.TELEMETRY_SHARD_SIZE = 2
    # An hour's slots: with 15 s ones a loaded CI machine ran the shards 2 s after the tick, in the next slot,
    # and they were (rightly) counted late. Lateness itself is tested below with times set by hand.
    settings.TELEMETRY_POLL_INTERVAL_S = 3600
    stopped = NodeFactory(telemetry_url="http://127.0.0.1:9/metrics", state="stopped")
    telemetry_poll_all.apply()
    messages = [m for m in queue() if m.headers["task"] == SHARD_TASK]
    kwargs = [m.decode()[1] for m in messages]
    assert {m.delivery_info["routing_key"] for m in messages} == {"telemetry"}
    assert {k["count"] for k in kwargs} == {3}
    assert len({k["scheduled_at"] for k in kwargs}) == 1
    assert sorted(pk for k in kwargs for pk in k["node_ids"]) == sorted(n.pk for n in fleet)
    assert stopped.pk not in {pk for k in kwargs for pk in k["node_ids"]}
    for message in messages:
        run(message)
    rows = sample_rows()
    assert len(rows) == 5
    assert len({ts for _, ts in rows}) == 1  # every shard stored into the tick's slot
    for k in kwargs:
        row = health(f"{k['index']}/3")
        assert (row.runs, row.failed_runs, row.late_runs, row.samples_total) == (1, 0, 0, len(k["node_ids"]))


def test_a_failed_shard_is_retried_once_and_counts_nothing_twice(fleet, queue, settings, monkeypatch, exporter):
    settings.TELEMETRY_SHARD_SIZE = 100
    exporter.statuses["n4"] = 503  # a failing node: its failure count must rise once for the slot, not twice
    real_update, calls = poll_module.nodes_update, []

    def update_then_fail_once(*args):
        calls.append(1)
        real_update(*args)  # the counters are written, then the database fails before the poll ends
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(poll_module, "nodes_update", update_then_fail_once)
    telemetry_poll_all.apply()
    (tick_shard,) = [m for m in queue() if m.headers["task"] == SHARD_TASK]
    run(tick_shard)
    assert health("0/1").failed_runs == 1
    assert health("0/1").last_error == "shard failed (OperationalError)"
    (retry,) = queue()
    assert retry.headers["retries"] == 1
    run(retry)
    assert len(sample_rows()) == 4  # the first attempt's samples stood; the retry stored none of them again
    assert Node.objects.get(pk=fleet[4].pk).consecutive_poll_failures == 1
    row = health("0/1")
    assert (row.runs, row.failed_runs, row.samples_total) == (2, 1, 0)
    assert row.last_error == ""
    assert queue() == []


def test_a_shard_failing_twice_is_not_retried_again(fleet, queue, settings, monkeypatch):
    def fail(**kwargs):
        raise OperationalError("database is down")

    monkeypatch.setattr(shards_module, "telemetry_poll", fail)
    telemetry_poll_all.apply()
    (message,) = [m for m in queue() if m.headers["task"] == SHARD_TASK]
    run(message)
    (retry,) = queue()
    run(retry)
    assert queue() == []
    row = health("0/1")
    assert (row.runs, row.failed_runs, row.last_ok_at) == (2, 2, None)
    assert sample_rows() == []


def test_a_redelivered_shard_of_a_finished_slot_does_nothing(fleet, exporter):
    when = timezone.now()
    ids = [n.pk for n in fleet]
    exporter.statuses["n0"] = 503
    assert shard_poll(index=0, count=1, node_ids=ids, scheduled_at=when) is not None
    assert shard_poll(index=0, count=1, node_ids=ids, scheduled_at=when) is None
    assert Node.objects.get(pk=fleet[0].pk).consecutive_poll_failures == 1
    assert health("0/1").runs == 1
    assert len(sample_rows()) == 4


def test_the_same_shard_of_the_same_slot_never_runs_twice_at_once(fleet, exporter):
    when = timezone.now()
    slot = poll_slot(when)
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [_lock_key(slot, 0, 2)])  # another worker runs shard 0/2
        assert shard_poll(index=0, count=2, node_ids=[fleet[0].pk], scheduled_at=when) is None
        assert sample_rows() == []
        # Another shard, or the same shard of another slot, is not held back.
        assert shard_poll(index=1, count=2, node_ids=[fleet[1].pk], scheduled_at=when) is not None
        later = when + timedelta(seconds=15)
        assert shard_poll(index=0, count=2, node_ids=[fleet[0].pk], scheduled_at=later, now=later) is not None
    finally:
        other.close()
    assert len(sample_rows()) == 2


def test_a_shard_starting_after_its_slot_is_recorded_late_and_stores_into_its_slot(fleet, settings):
    scheduled = timezone.now() - timedelta(seconds=settings.TELEMETRY_POLL_INTERVAL_S - 1)
    now = poll_slot(scheduled) + timedelta(seconds=settings.TELEMETRY_POLL_INTERVAL_S)  # slot has passed
    report = shard_poll(index=0, count=1, node_ids=[n.pk for n in fleet], scheduled_at=scheduled, now=now)
    assert report.slot == poll_slot(scheduled)
    assert {ts for _, ts in sample_rows()} == {poll_slot(scheduled)}
    row = health("0/1")
    assert (row.late_runs, row.failed_runs) == (1, 0)


def test_a_shard_whose_nodes_all_fail_is_a_failed_run(fleet, exporter):
    for i in range(5):
        exporter.statuses[f"n{i}"] = 500
    shard_poll(index=0, count=1, node_ids=[n.pk for n in fleet], scheduled_at=timezone.now())
    row = health("0/1")
    assert row.failed_runs == 1
    assert row.last_error == "no node answered: 5 failed, 0 skipped of 5"


def test_shards_of_an_earlier_count_leave_the_health_rows(fleet, queue, settings):
    """The fleet grew from 3 shards to 5: the 3 old shard rows would show as silent forever; the tick drops them."""
    from fleet.telemetry.health import SourceRun, source_health_record

    for index in range(3):
        source_health_record(SourceRun(TelemetrySourceKind.SCRAPE_SHARD, f"{index}/3", ok=True, samples=1))
    source_health_record(SourceRun(TelemetrySourceKind.PROMQL, "thanos", ok=True, samples=1))
    settings.TELEMETRY_SHARD_SIZE = 1
    telemetry_poll_all.apply()
    names = set(TelemetrySourceHealth.objects.values_list("kind", "name"))
    assert names == {(TelemetrySourceKind.PROMQL, "thanos")}  # shard rows appear again as the 5 shards run
