"""One bad endpoint stays that endpoint's problem: transport errors, out-of-range values and GPU floods are
recorded on the node that caused them while every other node of the same cycle is polled and stored."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from fleet.models import GPU, Node
from fleet.telemetry.poll import telemetry_poll
from tests.factories import GPUFactory, NodeFactory
from tests.fleet.telemetry.conftest import dcgm_text, read_request

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)
HEALTHY_UUID = "GPU-a0000000-0000-0000-0000-000000000001"


@pytest.fixture
def healthy(exporter):
    """A node whose endpoint answers well: its sample must be stored whatever the others do."""
    node = NodeFactory(name="healthy", telemetry_url=exporter.url("healthy"))
    gpu = GPUFactory(node=node, index=0, uuid=HEALTHY_UUID)
    exporter.bodies["healthy"] = dcgm_text([{"uuid": HEALTHY_UUID, "index": 0, "util": 42, "power": 300}])
    return gpu


def stored_gpu_ids() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT gpu_id FROM fleet_gpu_sample")
        return {row[0] for row in cursor.fetchall()}


def speak_ssh(sock, stop):
    read_request(sock)
    sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def hang_up(sock, stop):
    read_request(sock)


def speak_bad_headers(sock, stop):
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n")


@pytest.mark.parametrize(
    ("speak", "error"),
    [
        (speak_ssh, "not an HTTP answer (BadStatusLine)"),
        (hang_up, "not an HTTP answer (RemoteDisconnected)"),
        (speak_bad_headers, "not an HTTP answer (LineTooLong)"),
    ],
)
def test_a_non_http_endpoint_fails_alone(healthy, raw_server, speak, error):
    garbage = NodeFactory(name="garbage", telemetry_url=raw_server(speak).url())
    report = telemetry_poll(now=NOW)
    assert report.errors == {garbage.pk: error}
    assert report.nodes_ok == 1 and stored_gpu_ids() == {healthy.pk}
    garbage.refresh_from_db()
    assert (garbage.consecutive_poll_failures, garbage.last_poll_error) == (1, error)


def test_an_unparseable_url_fails_alone(healthy):
    bad = NodeFactory(telemetry_url="http://placeholder/")
    Node.objects.filter(pk=bad.pk).update(telemetry_url="http://127.0.0.1:99999999/metrics")
    report = telemetry_poll(now=NOW)
    assert report.errors == {bad.pk: "invalid URL"} and stored_gpu_ids() == {healthy.pk}


@pytest.mark.parametrize(
    ("labels", "value"),
    [
        ('gpu="99999",UUID="GPU-b0000000-0000-0000-0000-000000000002"', "50"),  # smallint overflow
        ('gpu="1",UUID="GPU-' + "b" * 77 + '"', "50"),  # 81 characters: more than the column holds
        ('gpu="1",UUID="GPU-b0000000-\x00"', "50"),  # PostgreSQL text cannot hold NUL
    ],
)
def test_a_sample_beyond_its_columns_is_counted_and_skipped(healthy, exporter, labels, value):
    node = NodeFactory(name="odd", telemetry_url=exporter.url("odd"))
    good = "GPU-c0000000-0000-0000-0000-000000000003"
    exporter.bodies["odd"] = (
        dcgm_text([{"uuid": good, "index": 0, "util": 10}]) + f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {value}\n"
    )
    report = telemetry_poll(now=NOW)
    assert report.errors == {} and report.samples_rejected == 1
    created = GPU.objects.get(node=node)
    assert created.uuid == good and stored_gpu_ids() == {healthy.pk, created.pk}
    node.refresh_from_db()
    assert node.last_poll_error == "1 sample skipped: values out of range" and node.consecutive_poll_failures == 0


@pytest.mark.parametrize(
    ("metric", "value"),
    [
        ("DCGM_FI_DEV_POWER_USAGE", "1e39"),  # beyond real (float4)
        ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "-5"),  # a negative unsigned column
        ("DCGM_FI_DEV_FB_FREE", "1e12"),  # memory_mib is an integer column
        ("DCGM_FI_DEV_XID_ERRORS", "1e30"),  # bigint
    ],
)
def test_out_of_range_values_skip_the_sample(healthy, exporter, metric, value):
    node = NodeFactory(name="odd", telemetry_url=exporter.url("odd"))
    uuid = "GPU-d0000000-0000-0000-0000-000000000004"
    exporter.bodies["odd"] = (
        f'DCGM_FI_DEV_FB_USED{{gpu="0",UUID="{uuid}"}} 10\n{metric}{{gpu="0",UUID="{uuid}"}} {value}\n'
    )
    report = telemetry_poll(now=NOW)
    assert report.errors == {} and report.samples_rejected == 1
    assert not GPU.objects.filter(node=node).exists() and stored_gpu_ids() == {healthy.pk}


def test_gpus_per_scrape_are_capped(healthy, exporter, settings):
    assert settings.TELEMETRY_MAX_GPUS_PER_NODE == 64
    flood = NodeFactory(name="flood", telemetry_url=exporter.url("flood"))
    exporter.bodies["flood"] = dcgm_text(
        [{"uuid": f"GPU-e{i:07d}-0000-0000-0000-000000000000", "index": i, "util": 1} for i in range(300)]
    )
    report = telemetry_poll(now=NOW)
    assert GPU.objects.filter(node=flood).count() == 64 and report.gpus_created == 64
    assert report.samples_rejected == 236 and report.errors == {}
    assert healthy.pk in stored_gpu_ids() and len(stored_gpu_ids()) == 65
    flood.refresh_from_db()
    assert flood.last_poll_error == "300 GPUs reported; only 64 kept (TELEMETRY_MAX_GPUS_PER_NODE)"


def test_one_cycle_with_every_kind_of_bad_node_still_stores_the_healthy_one(healthy, exporter, raw_server):
    NodeFactory(name="ssh", telemetry_url=raw_server(speak_ssh).url())
    NodeFactory(name="overflow", telemetry_url=exporter.url("overflow"))
    exporter.bodies["overflow"] = 'DCGM_FI_DEV_GPU_UTIL{gpu="99999",UUID="GPU-f0000000-0000-0000"} 5\n'
    NodeFactory(name="long-uuid", telemetry_url=exporter.url("long"))
    exporter.bodies["long"] = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-' + "f" * 90 + '"} 5\n'
    report = telemetry_poll(now=NOW)
    assert report.nodes_polled == 4 and report.samples_rejected == 2
    assert stored_gpu_ids() == {healthy.pk}
    assert list(report.errors.values()) == ["not an HTTP answer (BadStatusLine)"]
