"""MIG slices synced from telemetry (fleet.slices via the ingest path) and resolving health events (the API
action, the admin action, GPU-lost events resolved when the GPU reports again).

No shared fixture carries MIG labels, so the scrapes are written in dcgm-exporter's format for a MIG GPU: every
series once per GPU instance with GPU_I_PROFILE and GPU_I_ID, device-wide values repeated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.choices import Role
from fleet.choices import HealthEventKind
from fleet.models import GPU, GpuSlice, HealthEvent
from fleet.telemetry.exposition import parse_exposition
from fleet.telemetry.ingest import readings_store
from fleet.telemetry.report import PollReport
from tests.factories import GPUFactory, NodeFactory, TeamFactory

pytestmark = pytest.mark.django_db

SLOT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"


def _scrape(uuid: str, instances: list[tuple[str, str]], *, model: str = H100, lost: int | None = None) -> str:
    """A dcgm-exporter body for one GPU: per MIG instance (GPU_I_ID, GPU_I_PROFILE), or whole without any."""
    gpu = f'gpu="0",UUID="{uuid}",device="nvidia0",modelName="{model}"'
    tail = 'Hostname="mig-node",DCGM_FI_DRIVER_VERSION="550.54.15"'
    lines = []
    for instance_id, profile in instances or [(None, None)]:
        mig = f',GPU_I_PROFILE="{profile}",GPU_I_ID="{instance_id}"' if instance_id else ""
        labels = f"{gpu}{mig},{tail}"
        lines += [f"DCGM_FI_DEV_FB_USED{{{labels}}} 1024", f"DCGM_FI_DEV_POWER_USAGE{{{labels}}} 250.5"]
    if lost is not None:
        lines.append(f"fleetdeck_agent_gpu_lost{{{gpu},{tail}}} {lost}")
    return "\n".join(lines) + "\n"


def _store(node, body: str, *, whole: bool = True, slot=SLOT) -> PollReport:
    report = PollReport(slot=slot)
    readings_store({node.pk: list(parse_exposition(body).readings.values())}, report, whole_scrapes=whole)
    return report


def _slices(gpu) -> dict[str, tuple]:
    return {s.name: (s.units, s.of_units, s.team_id) for s in GpuSlice.objects.filter(gpu=gpu)}


@pytest.fixture
def gpu():
    return GPUFactory(model=H100, index=0)


def test_mig_instances_become_slices_keeping_the_operators_team(gpu):
    """3g + 2g + 2g of an H100's 7 slices: names "<profile>#<GPU_I_ID>", units the "Ng", of 7."""
    instances = [("1", "3g.40gb"), ("5", "2g.20gb"), ("6", "2g.20gb")]
    report = _store(gpu.node, _scrape(gpu.uuid, instances))
    assert report.warnings == {}
    assert _slices(gpu) == {"3g.40gb#1": (3, 7, None), "2g.20gb#5": (2, 7, None), "2g.20gb#6": (2, 7, None)}
    team = TeamFactory()
    GpuSlice.objects.filter(gpu=gpu, name="3g.40gb#1").update(team=team)
    # Instance 6 was destroyed and 1g.10gb#13 created: 6 goes, 13 comes, 1 keeps its team.
    _store(gpu.node, _scrape(gpu.uuid, [("1", "3g.40gb"), ("5", "2g.20gb"), ("13", "1g.10gb")]))
    assert _slices(gpu) == {"3g.40gb#1": (3, 7, team.pk), "2g.20gb#5": (2, 7, None), "1g.10gb#13": (1, 7, None)}


def test_unchanged_instances_cost_one_query_and_write_nothing(gpu):
    body = _scrape(gpu.uuid, [("1", "3g.40gb")])
    _store(gpu.node, body)
    before = GpuSlice.objects.get(gpu=gpu).updated
    with CaptureQueriesContext(connection) as queries:
        _store(gpu.node, body, slot=SLOT + timedelta(minutes=1))
    slice_queries = [q["sql"] for q in queries.captured_queries if "fleet_gpuslice" in q["sql"]]
    assert len(slice_queries) == 1 and slice_queries[0].startswith("SELECT")
    assert GpuSlice.objects.get(gpu=gpu).updated == before


def test_mig_turned_off_removes_slices_only_on_a_whole_scrape(gpu):
    _store(gpu.node, _scrape(gpu.uuid, [("1", "3g.40gb")]))
    # A remote-write batch may hold part of a GPU's series: it never removes slices.
    _store(gpu.node, _scrape(gpu.uuid, []), whole=False)
    assert list(_slices(gpu)) == ["3g.40gb#1"]
    _store(gpu.node, _scrape(gpu.uuid, []))
    assert _slices(gpu) == {}


def test_time_slices_of_a_whole_gpu_are_left_alone(gpu):
    GpuSlice.objects.create(gpu=gpu, kind="time-slice", name="replica-1", units=1, of_units=4)
    _store(gpu.node, _scrape(gpu.uuid, []))
    assert list(_slices(gpu)) == ["replica-1"]


def test_a30_counts_in_4_and_a_bad_node_does_not_stop_the_others():
    """A30: 2g.12gb of 4. The other node reports 7g + 1g = 8 of 7 (impossible): warned, nothing written."""
    a30 = GPUFactory(model="NVIDIA A30", memory_mib=24576, index=0)
    bad = GPUFactory(model=H100, index=0)
    good_body = _scrape(a30.uuid, [("3", "2g.12gb")], model="NVIDIA A30")
    bad_body = _scrape(bad.uuid, [("0", "7g.80gb"), ("9", "1g.10gb")])
    report = PollReport(slot=SLOT)
    readings = {
        a30.node_id: list(parse_exposition(good_body).readings.values()),
        bad.node_id: list(parse_exposition(bad_body).readings.values()),
    }
    readings_store(readings, report, whole_scrapes=True)
    assert _slices(a30) == {"2g.12gb#3": (2, 4, None)}
    assert _slices(bad) == {}
    assert "8 of the GPU's 7" in report.warnings[bad.node_id]
    assert report.samples_added == 2


@pytest.mark.parametrize(
    ("instances", "model", "why"),
    [
        ([("1", "3g.40gb")], "Tesla T4", "without MIG"),
        ([("1", "big.slice")], H100, "unknown profile"),
        ([("one", "3g.40gb")], H100, "unknown profile"),
        ([("1", '3g.40gb\\"\\n<b>')], H100, "unknown profile"),  # escaped quote and line break
    ],
)
def test_hostile_or_impossible_instances_are_warned_not_stored(instances, model, why):
    gpu = GPUFactory(model=model, index=0)
    report = _store(gpu.node, _scrape(gpu.uuid, instances, model=model))
    assert why in report.warnings[gpu.node_id]
    assert not GpuSlice.objects.exists()
    assert report.samples_added == 1  # the samples are stored regardless


def test_a_gpu_first_seen_with_mig_gets_its_slices_at_once():
    node = NodeFactory()
    uuid = "GPU-7a1b2c3d-0000-4000-8000-000000000001"
    _store(node, _scrape(uuid, [("2", "4g.40gb")]))
    assert _slices(GPU.objects.get(uuid=uuid)) == {"4g.40gb#2": (4, 7, None)}


# --- health events ---------------------------------------------------------------------------------------


def _event(gpu, kind=HealthEventKind.XID, at=SLOT, **kwargs) -> HealthEvent:
    return HealthEvent.objects.create(gpu=gpu, node=gpu.node, kind=kind, occurred_at=at, code=79, **kwargs)


def test_gpu_lost_is_resolved_when_the_gpu_reports_again(gpu):
    _store(gpu.node, _scrape(gpu.uuid, [], lost=1))
    event = HealthEvent.objects.get(gpu=gpu, kind=HealthEventKind.GPU_LOST)
    xid = _event(gpu, at=SLOT - timedelta(hours=1))
    assert event.resolved_at is None
    back = SLOT + timedelta(minutes=5)
    _store(gpu.node, _scrape(gpu.uuid, [], lost=0), slot=back)
    event.refresh_from_db()
    xid.refresh_from_db()
    assert event.resolved_at == back
    assert xid.resolved_at is None  # an XID needs a person


def test_resolve_action(api_client, gpu):
    event = _event(gpu)
    url = reverse("api:healthevent-resolve", args=[event.pk])
    viewer = api_client(Role.VIEWER)
    assert viewer.get(reverse("api:healthevent-list"), {"open": "true"}).data["count"] == 1
    assert viewer.post(url, {}, format="json").status_code == 403
    operator = api_client(Role.OPERATOR)
    before = operator.post(url, {"resolved_at": "2026-12-01T09:59:59Z"}, format="json")
    assert before.status_code == 400 and "after it occurred" in str(before.data["resolved_at"])
    future = operator.post(url, {"resolved_at": "2999-01-01T00:00:00Z"}, format="json")
    assert future.status_code == 400 and "future" in str(future.data["resolved_at"])
    assert operator.post(url, {"resolved_at": "yesterday"}, format="json").status_code == 400
    event.refresh_from_db()
    assert event.resolved_at is None
    done = operator.post(url, {"resolved_at": "2026-12-01T12:30:00Z"}, format="json")
    assert done.status_code == 200 and done.data["open"] is False
    assert done.data["resolved_at"] == "2026-12-01T12:30:00Z"
    twice = operator.post(url, {}, format="json")
    assert twice.status_code == 400 and "resolved already" in str(twice.data["resolved_at"])
    event.refresh_from_db()
    assert event.resolved_at == datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    assert viewer.get(reverse("api:healthevent-list"), {"open": "true"}).data["count"] == 0


def test_admin_mark_resolved(client, make_user, gpu):
    client.force_login(make_user(Role.ADMIN))
    open_event = _event(gpu)
    old = _event(gpu, kind=HealthEventKind.ECC_DBE, resolved_at=SLOT + timedelta(hours=1))
    url = reverse("admin:fleet_healthevent_changelist")
    assert "Mark resolved" in client.get(url).content.decode()
    response = client.post(url, {"action": "mark_resolved", "_selected_action": [open_event.pk, old.pk]}, follow=True)
    text = response.content.decode()
    assert "1 event(s) marked resolved" in text and "1 event(s) were not open" in text
    open_event.refresh_from_db()
    old.refresh_from_db()
    assert open_event.resolved_at is not None
    assert old.resolved_at == SLOT + timedelta(hours=1)


def test_demo_seeds_a_mig_node_and_an_open_xid_idempotently():
    """3g.40gb#1 → Research, 2g.20gb#5 and 1g.10gb#13 → Inference, 1g.10gb#14 idle: 3 + 3 + 1 of 7."""
    from devtools.demo.fleet import DEMO_MIG_NODE, demo_capacity_seed, demo_fleet_seed

    demo_fleet_seed(nodes=15, seed=5)
    assert demo_capacity_seed() == {"nodes": 0, "gpus": 0}  # seeded already: nothing new
    slices = GpuSlice.objects.filter(gpu__node__name=DEMO_MIG_NODE).select_related("team")
    held = {s.name: (s.units, s.team.slug if s.team else None) for s in slices}
    assert held == {
        "3g.40gb#1": (3, "research"),
        "2g.20gb#5": (2, "inference"),
        "1g.10gb#13": (1, "inference"),
        "1g.10gb#14": (1, None),
    }
    assert HealthEvent.objects.filter(kind=HealthEventKind.XID, resolved_at__isnull=True).count() == 1
    for s in slices:
        s.full_clean()
