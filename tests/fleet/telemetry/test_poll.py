"""Polling nodes' endpoints: samples stored once per slot, failures isolated, health events, GPU discovery."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from fleet.choices import HealthEventKind
from fleet.models import GPU, HealthEvent, Node
from fleet.telemetry.poll import poll_slot, telemetry_poll
from tests.factories import GPUFactory, NodeFactory
from tests.fleet.telemetry.conftest import dcgm_text

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)
UUID_A = "GPU-a0000000-0000-0000-0000-000000000001"
UUID_B = "GPU-b0000000-0000-0000-0000-000000000002"


def sample_rows(gpu_id=None):
    with connection.cursor() as cursor:
        if gpu_id is None:
            cursor.execute("SELECT gpu_id, ts, util_pct, power_w, mem_used_mib, temp_c FROM fleet_gpu_sample")
        else:
            cursor.execute(
                "SELECT gpu_id, ts, util_pct, power_w, mem_used_mib, temp_c FROM fleet_gpu_sample WHERE gpu_id = %s",
                [gpu_id],
            )
        return cursor.fetchall()


@pytest.fixture
def node_with_gpus(exporter):
    node = NodeFactory(name="n1", telemetry_url=exporter.url("n1"), token_ref="")
    a = GPUFactory(node=node, index=0, uuid=UUID_A)
    b = GPUFactory(node=node, index=1, uuid=UUID_B)
    exporter.bodies["n1"] = dcgm_text(
        [
            {"uuid": UUID_A, "index": 0, "util": 87, "power": 612.5, "temp": 71, "used": 40000, "free": 41920},
            {"uuid": UUID_B, "index": 1, "util": 0, "power": 68.25, "temp": 33, "used": 0, "free": 81920},
        ]
    )
    return node, a, b


def test_poll_stores_samples_and_latest_readings(node_with_gpus):
    node, a, b = node_with_gpus
    report = telemetry_poll(now=NOW)
    assert (report.nodes_polled, report.nodes_ok, report.samples_added, report.gpus_seen) == (1, 1, 2, 2)
    slot = poll_slot(NOW)
    assert slot == datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert sorted(sample_rows()) == sorted([(a.pk, slot, 87, 612.5, 40000.0, 71), (b.pk, slot, 0, 68.25, 0.0, 33)])
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.util_pct, a.power_w, a.sampled_at, a.idle_since) == (87, 612.5, slot, None)
    assert b.idle_since == slot  # under the idle threshold from this sample on
    node.refresh_from_db()
    assert node.last_seen == NOW and node.consecutive_poll_failures == 0


def test_a_retried_poll_in_the_same_slot_stores_nothing_twice(node_with_gpus):
    telemetry_poll(now=NOW)
    again = telemetry_poll(now=NOW + timedelta(seconds=5))
    assert again.samples_added == 0 and again.gpus_seen == 2
    assert len(sample_rows()) == 2
    later = telemetry_poll(now=NOW + timedelta(seconds=15))
    assert later.samples_added == 2 and len(sample_rows()) == 4


def test_idle_since_holds_while_idle_and_clears_on_load(node_with_gpus, exporter):
    _, _, b = node_with_gpus
    telemetry_poll(now=NOW)
    telemetry_poll(now=NOW + timedelta(seconds=15))
    b.refresh_from_db()
    assert b.idle_since == poll_slot(NOW)
    exporter.bodies["n1"] = dcgm_text([{"uuid": UUID_B, "index": 1, "util": 55}])
    telemetry_poll(now=NOW + timedelta(seconds=30))
    b.refresh_from_db()
    assert b.idle_since is None


def test_failing_nodes_degrade_only_themselves_and_recover(node_with_gpus, exporter, settings):
    settings.TELEMETRY_POLL_TIMEOUT_S = 1
    broken = NodeFactory(name="broken", telemetry_url=exporter.url("broken"))
    exporter.statuses["broken"] = 500
    exporter.bodies["broken"] = "oops"
    slow = NodeFactory(name="slow", telemetry_url=exporter.url("slow"))
    exporter.hang_s["slow"] = 2
    exporter.bodies["slow"] = dcgm_text([])
    refused = NodeFactory(name="refused", telemetry_url="http://127.0.0.1:9/metrics")

    for i in range(settings.TELEMETRY_UNREACHABLE_AFTER_POLLS):
        report = telemetry_poll(now=NOW + timedelta(seconds=15 * i))
        assert report.nodes_ok == 1 and report.samples_added == 2  # the healthy node, every time
    assert "HTTP 500" in report.errors[broken.pk]
    assert "timed out" in report.errors[slow.pk]
    assert "unreachable" in report.errors[refused.pk]
    assert sorted(report.marked_unreachable) == sorted([broken.pk, slow.pk, refused.pk])
    states = dict(Node.objects.values_list("name", "state"))
    assert states == {"n1": "running", "broken": "unreachable", "slow": "unreachable", "refused": "unreachable"}

    exporter.statuses.pop("broken")
    exporter.bodies["broken"] = dcgm_text([{"uuid": "GPU-c0000000-0000", "index": 0, "util": 10, "free": 100}])
    telemetry_poll(now=NOW + timedelta(minutes=5))
    broken.refresh_from_db()
    assert (broken.state, broken.consecutive_poll_failures, broken.last_poll_error) == ("running", 0, "")


def test_stopped_nodes_and_nodes_without_endpoint_are_not_polled(exporter):
    NodeFactory(state="stopped", telemetry_url=exporter.url("x"))
    NodeFactory(telemetry_url="")
    assert telemetry_poll(now=NOW).nodes_polled == 0
    assert exporter.requests == []


def test_bearer_token_from_reference(node_with_gpus, exporter, monkeypatch, tmp_path, settings):
    settings.FLEETDECK_SECRETS_DIR = str(tmp_path)
    node, *_ = node_with_gpus
    exporter.token = "s3cret-agent-token"
    node.token_ref = "env:FLEETDECK_TEST_AGENT_TOKEN"
    node.save()
    report = telemetry_poll(now=NOW)
    assert "FLEETDECK_TEST_AGENT_TOKEN is not set" in report.errors[node.pk]
    monkeypatch.setenv("FLEETDECK_TEST_AGENT_TOKEN", "wrong")
    assert "HTTP 401" in telemetry_poll(now=NOW).errors[node.pk]
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-agent-token\n")
    node.token_ref = f"file:{token_file}"
    node.save()
    report = telemetry_poll(now=NOW)
    assert report.nodes_ok == 1 and exporter.requests[-1][1] == "Bearer s3cret-agent-token"


def test_gpus_of_a_node_registered_by_url_are_created_from_telemetry(exporter, shared_fixtures):
    node = NodeFactory(name="t4-host", telemetry_url=exporter.url("t4"))
    exporter.bodies["t4"] = (shared_fixtures / "dcgm" / "datadog_dcgm_tesla_t4_serve_metrics.prom").read_text()
    report = telemetry_poll(now=NOW)
    assert report.gpus_created == 2 and report.samples_added == 2 and report.malformed_lines == 0
    gpu = GPU.objects.get(uuid="GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e")
    assert (gpu.node_id, gpu.model, gpu.memory_mib) == (node.pk, "Tesla T4", 15109)
    assert gpu.power_w == pytest.approx(8.969, abs=1e-4)  # stored as real (4 bytes), like the samples


def test_cloud_gpu_known_by_slot_gets_its_uuid(exporter):
    node = NodeFactory(telemetry_url=exporter.url("cloud"))
    gpu = GPUFactory(node=node, index=0, uuid=None)
    exporter.bodies["cloud"] = dcgm_text([{"uuid": UUID_A, "index": 0, "util": 3}])
    report = telemetry_poll(now=NOW)
    gpu.refresh_from_db()
    assert gpu.uuid == UUID_A and report.gpus_created == 0 and report.samples_added == 1


def test_xid_ecc_and_lost_gpu_become_health_events_once(node_with_gpus, exporter):
    node, a, b = node_with_gpus
    gpus = [{"uuid": UUID_A, "index": 0, "util": 50, "xid": 0, "sbe": 10, "dbe": 0}]
    exporter.bodies["n1"] = dcgm_text(gpus)
    telemetry_poll(now=NOW)
    assert not HealthEvent.objects.exists()  # first sight of counters sets the baseline

    gpus[0].update(xid=79, sbe=13)
    exporter.bodies["n1"] = dcgm_text(gpus + [{"uuid": UUID_B, "index": 1, "lost": 1}])
    telemetry_poll(now=NOW + timedelta(seconds=15))
    telemetry_poll(now=NOW + timedelta(seconds=30))  # same values again: nothing new
    events = {(e.gpu_id, e.kind, e.code) for e in HealthEvent.objects.all()}
    assert events == {
        (a.pk, HealthEventKind.XID, 79),
        (a.pk, HealthEventKind.ECC_SBE, 3),
        (b.pk, HealthEventKind.GPU_LOST, 0),
    }
    b.refresh_from_db()
    assert b.lost


def test_malformed_lines_are_counted_and_the_rest_stored(node_with_gpus, exporter):
    exporter.bodies["n1"] += 'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="' + UUID_A + '"} banana\n{{{\n'
    report = telemetry_poll(now=NOW)
    assert report.malformed_lines == 2 and report.samples_added == 2


def test_only_the_given_nodes_are_polled(node_with_gpus, exporter):
    other = NodeFactory(telemetry_url=exporter.url("other"))
    exporter.bodies["other"] = dcgm_text([])
    report = telemetry_poll(node_ids=[other.pk], now=NOW)
    assert report.nodes_polled == 1 and [p for p, _ in exporter.requests] == ["/other/metrics"]


def test_a_gpu_lost_before_it_was_named_is_matched_by_its_index(node_with_gpus, exporter):
    _, _, b = node_with_gpus
    exporter.bodies["n1"] = 'fleetdeck_agent_gpu_lost{gpu="1",UUID="",device="nvidia1",modelName=""} 1\n'
    report = telemetry_poll(now=NOW)
    assert report.malformed_lines == 0 and report.samples_added == 0
    b.refresh_from_db()
    assert b.lost and HealthEvent.objects.get().gpu_id == b.pk


def test_a_shared_token_file_is_read_once_per_poll(exporter, tmp_path, monkeypatch, settings):
    settings.FLEETDECK_SECRETS_DIR = str(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("shared-token\n")
    exporter.token = "shared-token"
    for i in range(5):
        NodeFactory(telemetry_url=exporter.url(f"n{i}"), token_ref=f"file:{token_file}")
        exporter.bodies[f"n{i}"] = dcgm_text([])
    reads = []
    real_read_text = type(token_file).read_text
    monkeypatch.setattr(type(token_file), "read_text", lambda self, *a, **k: reads.append(self) or real_read_text(self))
    report = telemetry_poll(now=NOW)
    assert report.nodes_ok == 5 and reads == [token_file]


def test_the_poll_module_still_offers_what_callers_import_from_it():
    """The poller is split by role (tokens, fetch, readings, ingest, report); callers keep one import path."""
    from fleet.telemetry import fetch, ingest, poll, report, tokens

    assert poll.fetch_many is fetch.fetch_many
    assert poll.token_resolve is tokens.token_resolve
    assert poll.PollReport is report.PollReport
    assert poll.poll_slot is report.poll_slot
    assert poll.readings_store is ingest.readings_store
    assert set(poll.__all__) <= set(vars(poll))
