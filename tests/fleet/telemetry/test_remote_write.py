"""Prometheus remote-write in: real snappy + protobuf WriteRequest bodies, every bad input, storage, health."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import cramjam
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role
from fleet.choices import TelemetrySourceKind
from fleet.models import GPU, TelemetrySourceHealth
from fleet.telemetry.remote_write_pb import (
    Label,
    Sample,
    TimeSeries,
    WriteRequest,
    WriteRequestRaw,
    write_request_body,
)
from tests.factories import GPUFactory, NodeFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/telemetry/remote-write"
HEADERS = {
    "HTTP_CONTENT_ENCODING": "snappy",
    "HTTP_X_PROMETHEUS_REMOTE_WRITE_VERSION": "0.1.0",
}
UUID = "GPU-11111111-0000-0000-0000-000000000001"
NOW = timezone.now()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def slot_ms(moment: datetime, interval_s: int = 15) -> int:
    value = ms(moment)
    return value - value % (interval_s * 1000)


T0 = slot_ms(NOW - timedelta(minutes=10))  # a slot start, inside the raw retention


def series(metric: str, samples, uuid: str = UUID, **labels) -> tuple[dict, list]:
    base = {"__name__": metric, "UUID": uuid, "gpu": "0", "modelName": "NVIDIA H100 80GB HBM3"}
    base.update({"Hostname": "node-a", "instance": "node-a:9400", "job": "dcgm"})
    base.update(labels)
    return {k: v for k, v in base.items() if v is not None}, samples


def gpu_series(uuid: str = UUID, ts: int = T0, util: float = 50.0, **labels) -> list:
    return [
        series("DCGM_FI_DEV_GPU_UTIL", [(util, ts)], uuid, **labels),
        series("DCGM_FI_DEV_POWER_USAGE", [(300.5, ts)], uuid, **labels),
        series("DCGM_FI_DEV_FB_USED", [(1000.0, ts)], uuid, **labels),
        series("DCGM_FI_DEV_GPU_TEMP", [(61.0, ts)], uuid, **labels),
        series("DCGM_FI_DEV_SM_CLOCK", [(1980.0, ts)], uuid, **labels),
    ]


@pytest.fixture
def writer(api_client):
    return api_client(Role.OPERATOR)


def post(client, body: bytes, **headers):
    return client.post(
        URL, data=body, content_type=headers.pop("content_type", "application/x-protobuf"), **{**HEADERS, **headers}
    )


def stored(gpu_id: int | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT gpu_id, ts, util_pct, power_w, mem_used_mib, temp_c, sm_clock_mhz FROM fleet_gpu_sample "
            "WHERE %s::bigint IS NULL OR gpu_id = %s ORDER BY gpu_id, ts",
            [gpu_id, gpu_id],
        )
        return cursor.fetchall()


@pytest.fixture
def gpu():
    return GPUFactory(node=NodeFactory(name="node-a"), index=0, uuid=UUID)


def test_a_write_request_is_stored_as_a_scrape_would_store_it(writer, gpu):
    response = post(writer, write_request_body(gpu_series()))
    assert response.status_code == 204, response.content
    rows = stored(gpu.pk)
    assert rows == [(gpu.pk, datetime.fromtimestamp(T0 / 1000, tz=UTC), 50, 300.5, 1000.0, 61, 1980)]
    gpu.refresh_from_db()
    assert gpu.util_pct == 50
    health = TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.REMOTE_WRITE)
    assert (health.name, health.samples_total, health.last_error) == (writer.user.username, 5, "")
    assert health.last_ok_at is not None and health.lag_s is not None


def test_samples_keep_their_own_timestamps_rounded_to_the_poll_slot(writer, gpu, settings):
    settings.TELEMETRY_POLL_INTERVAL_S = 15
    util = series("DCGM_FI_DEV_GPU_UTIL", [(10.0, T0 + 1_000), (20.0, T0 + 15_000), (30.0, T0 + 45_999)])
    assert post(writer, write_request_body([util])).status_code == 204
    slots = [(row[1], row[2]) for row in stored(gpu.pk)]
    t0 = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    assert slots == [(t0, 10), (t0 + timedelta(seconds=15), 20), (t0 + timedelta(seconds=45), 30)]


def test_duplicate_and_out_of_order_samples_never_store_twice(writer, gpu):
    util = series("DCGM_FI_DEV_GPU_UTIL", [(30.0, T0 + 30_000), (10.0, T0), (10.0, T0), (20.0, T0 + 15_000)])
    response = post(writer, write_request_body([util]))
    assert response.status_code == 200
    assert response.json()["skipped"] == {"duplicate sample (same series and timestamp)": 1}
    assert [row[2] for row in stored(gpu.pk)] == [10, 20, 30]
    # The same request again (Prometheus retrying), and an older, out-of-order one: nothing is stored twice.
    again = post(writer, write_request_body([util]))
    assert again.json()["rows_stored"] == 0 and again.json()["rows_already_stored"] == 3
    older = post(writer, write_request_body([series("DCGM_FI_DEV_GPU_UTIL", [(99.0, T0 + 15_000)])]))
    assert older.status_code == 204
    assert [row[2] for row in stored(gpu.pk)] == [10, 20, 30]


def test_two_samples_of_one_slot_keep_the_newest(writer, gpu):
    util = series("DCGM_FI_DEV_GPU_UTIL", [(70.0, T0 + 10_000), (60.0, T0 + 5_000), (10.0, T0)])
    response = post(writer, write_request_body([util]))
    assert response.status_code == 200
    assert sum(response.json()["skipped"].values()) == 2
    assert [row[2] for row in stored(gpu.pk)] == [70]


def test_nan_and_inf_values_are_counted_and_skipped(writer, gpu):
    body = write_request_body(
        [
            series("DCGM_FI_DEV_GPU_UTIL", [(math.nan, T0)]),
            series("DCGM_FI_DEV_POWER_USAGE", [(math.inf, T0)]),
            series("DCGM_FI_DEV_GPU_TEMP", [(-math.inf, T0)]),
            series("DCGM_FI_DEV_SM_CLOCK", [(1500.0, T0)]),
        ]
    )
    response = post(writer, body)
    assert response.status_code == 200
    data = response.json()
    assert data["skipped"] == {"value is NaN or ±Inf": 3} and data["samples_accepted"] == 1
    assert stored(gpu.pk) == [(gpu.pk, datetime.fromtimestamp(T0 / 1000, tz=UTC), None, None, None, None, 1500)]


def test_series_without_uuid_are_counted_and_skipped_and_the_rest_is_kept(writer, gpu):
    body = write_request_body(
        [
            series("DCGM_FI_DEV_GPU_UTIL", [(40.0, T0)], uuid=None),
            series("DCGM_FI_DEV_GPU_UTIL", [(40.0, T0)], uuid=None, gpu=None),
            series("up", [(1.0, T0)], uuid=None),  # not a stored metric: ignored, not an error
            *gpu_series(),
        ]
    )
    response = post(writer, body)
    assert response.status_code == 200
    data = response.json()
    assert data["skipped"] == {"no UUID label": 2}
    assert (data["samples_ignored"], data["samples_accepted"], data["rows_stored"]) == (1, 5, 1)


def test_timestamps_outside_the_retention_or_in_the_future_are_skipped(writer, gpu, settings):
    old = slot_ms(NOW - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_H + 1))
    future = slot_ms(NOW + timedelta(hours=1))
    util = series("DCGM_FI_DEV_GPU_UTIL", [(1.0, old), (2.0, future), (3.0, T0)])
    response = post(writer, write_request_body([util]))
    assert response.json()["skipped"] == {"timestamp outside the raw retention or in the future": 2}
    assert [row[2] for row in stored(gpu.pk)] == [3]


def test_an_unknown_gpu_is_registered_under_the_node_its_hostname_names(writer):
    node = NodeFactory(name="host-7")
    uuid = "GPU-77777777-0000-0000-0000-000000000007"
    response = post(writer, write_request_body(gpu_series(uuid, Hostname="host-7", gpu="3")))
    assert response.status_code == 204, response.content
    created = GPU.objects.get(uuid=uuid)
    assert (created.node_id, created.index, created.model) == (node.pk, 3, "NVIDIA H100 80GB HBM3")
    assert len(stored(created.pk)) == 1


def test_an_unknown_gpu_is_registered_by_the_host_of_its_instance_label(writer):
    node = NodeFactory(name="10.0.0.8")
    uuid = "GPU-88888888-0000-0000-0000-000000000008"
    response = post(writer, write_request_body(gpu_series(uuid, Hostname=None, instance="10.0.0.8:9400")))
    assert response.status_code == 204, response.content
    assert GPU.objects.get(uuid=uuid).node_id == node.pk


def test_an_unknown_gpu_without_a_node_is_counted_and_skipped_with_the_reason(writer, gpu):
    uuid = "GPU-99999999-0000-0000-0000-000000000009"
    body = write_request_body([*gpu_series(uuid, Hostname="nowhere"), *gpu_series()])
    response = post(writer, body)
    assert response.status_code == 200
    data = response.json()
    assert data["unknown_gpus"] == {uuid: "not known, and no node is named 'nowhere'"}
    assert list(data["skipped"].values()) == [5] and "unknown GPU" in next(iter(data["skipped"]))
    assert not GPU.objects.filter(uuid=uuid).exists() and len(stored(gpu.pk)) == 1


def test_a_request_of_only_unknown_gpus_marks_the_source_failing_with_why(writer):
    response = post(writer, write_request_body(gpu_series("GPU-dead", Hostname="nowhere")))
    assert response.status_code == 200
    health = TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.REMOTE_WRITE)
    assert health.last_ok_at is None and "unknown GPU" in health.last_error


def test_values_out_of_range_are_rejected_like_a_scrape(writer, gpu):
    body = write_request_body([series("DCGM_FI_DEV_POWER_USAGE", [(1e39, T0)]), *gpu_series(ts=T0 + 15_000)])
    response = post(writer, body)
    assert response.status_code == 200
    assert response.json()["skipped"] == {"value out of range, or over TELEMETRY_MAX_GPUS_PER_NODE": 1}
    assert len(stored(gpu.pk)) == 1


def test_xid_and_ecc_series_become_health_events(writer, gpu):
    body = write_request_body(
        [series("DCGM_FI_DEV_XID_ERRORS", [(79.0, T0)]), series("DCGM_FI_DEV_GPU_UTIL", [(5.0, T0)])]
    )
    response = post(writer, body)
    assert response.status_code == 204
    assert gpu.health_events.get().code == 79


def test_mig_instances_add_up_their_framebuffer_once_per_slot(writer, gpu):
    body = write_request_body(
        [
            series("DCGM_FI_DEV_FB_USED", [(100.0, T0), (100.0, T0 + 5_000)], GPU_I_ID="1"),
            series("DCGM_FI_DEV_FB_USED", [(200.0, T0)], GPU_I_ID="2"),
        ]
    )
    assert post(writer, body).status_code == 200
    assert stored(gpu.pk)[0][4] == 300.0


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "empty body"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 400, "uncompressed-length header"),
        (write_request_body(gpu_series())[:-7], 400, "not valid snappy"),  # truncated
        (b"\x10" + b"garbage!" * 2, 400, "not valid snappy"),  # a header, then not snappy
        (bytes(cramjam.snappy.compress(b"x" * 100)), 400, "snappy"),  # framed snappy, not block
        (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff")), 400, "not a protobuf"),
        (bytes(cramjam.snappy.compress_raw(b'{"timeseries": []}')), 400, "not a protobuf"),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\x10short")), 400, "not a protobuf"),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\x05\x0a\x30abc")), 400, "not a protobuf"),  # label too long
    ],
    ids=["empty", "bad-varint", "truncated", "wrong-snappy", "framed", "not-protobuf", "json", "short", "inner"],
)
def test_unreadable_bodies_get_a_clear_400_and_a_failed_health_run(writer, body, status, reason):
    response = post(writer, body)
    assert response.status_code == status, response.content
    assert reason in response.json()["detail"]
    health = TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.REMOTE_WRITE)
    assert health.failed_runs == 1 and reason in health.last_error


def test_a_label_that_is_not_utf8_skips_its_series_and_keeps_the_rest(writer, gpu):
    request = WriteRequestRaw.FromString(write_request_body(gpu_series(), compress=False))
    label = b"\x0a\x08__name__\x12\x02\xff\xfe"  # Label{name: "__name__", value: not UTF-8}
    sample = Sample(value=1.0, timestamp=T0).SerializeToString()
    request.timeseries.append(bytes([0x0A, len(label)]) + label + bytes([0x12, len(sample)]) + sample)
    response = post(writer, bytes(cramjam.snappy.compress_raw(request.SerializeToString())))
    assert response.status_code == 200
    data = response.json()
    assert data["skipped"] == {"a label is not valid UTF-8": 1} and data["samples_accepted"] == 5


@pytest.mark.parametrize("first", ["samples", "long-label"])
def test_series_in_any_field_order_or_with_long_labels_map_the_same(writer, gpu, first):
    long_value = "x" * 300
    labels, samples = series("DCGM_FI_DEV_GPU_UTIL", [(42.0, T0)], team=long_value if first == "long-label" else None)
    message = TimeSeries()
    if first == "samples":
        message.samples.add(value=42.0, timestamp=T0)  # samples before labels: valid protobuf, unusual order
    message.labels.extend(Label(name=k, value=v) for k, v in sorted(labels.items()))
    if first != "samples":
        message.samples.add(value=42.0, timestamp=T0)
    body = WriteRequest(timeseries=[message]).SerializeToString()
    assert post(writer, bytes(cramjam.snappy.compress_raw(body))).status_code == 204
    assert [row[2] for row in stored(gpu.pk)] == [42]


def test_a_huge_body_is_refused_with_413(writer, gpu, settings):
    settings.TELEMETRY_REMOTE_WRITE_MAX_BYTES = 2_000
    body = write_request_body([series("DCGM_FI_DEV_GPU_UTIL", [(i * 1.37, T0)], f"GPU-{i}") for i in range(1000)])
    assert len(body) > 2_000
    response = post(writer, body)
    assert response.status_code == 413 and "TELEMETRY_REMOTE_WRITE_MAX_BYTES" in response.json()["detail"]


def test_a_decompression_bomb_is_refused_by_its_header_before_decompressing(writer, settings):
    settings.TELEMETRY_REMOTE_WRITE_MAX_BYTES = 1_000_000
    bomb = bytes(cramjam.snappy.compress_raw(b"\x00" * 5_000_000))
    assert len(bomb) < 1_000_000
    response = post(writer, bomb)
    assert response.status_code == 413 and "decompresses to 5000000 bytes" in response.json()["detail"]
    # A header that lies (claims 4 GB) is refused the same way, without allocating it.
    liar = b"\x80\x80\x80\x80\x0f" + bomb[3:]
    assert post(writer, liar).status_code == 413


def test_a_header_claiming_fewer_bytes_than_the_data_is_a_400(writer, gpu):
    body = write_request_body(gpu_series())
    fake = b"\x05" + body[body.index(next(b for b in body if b < 0x80)) + 1 :]
    assert post(writer, fake).status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_CONTENT_ENCODING": "gzip"},
        {"content_type": "application/json"},
        {"content_type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
        {"HTTP_X_PROMETHEUS_REMOTE_WRITE_VERSION": "2.0.0"},
    ],
)
def test_other_encodings_and_versions_get_415(writer, headers):
    assert post(writer, write_request_body(gpu_series()), **headers).status_code == 415


def test_authentication_and_permissions(api_client, gpu):
    body = write_request_body(gpu_series())
    assert post(APIClient(), body).status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert post(bad, body).status_code == 401
    read_only = post(api_client(Role.ADMIN, read_only=True), body)
    assert read_only.status_code == 403 and "read-only" in read_only.json()["detail"]
    assert post(api_client(Role.VIEWER), body).status_code == 403
    assert stored() == []
    assert post(api_client(Role.ADMIN), body).status_code == 204


def test_query_count_does_not_grow_with_gpus(writer):
    def request_queries(gpus: int, prefix: str) -> int:
        node = NodeFactory(name=f"{prefix}-node")
        uuids = [f"GPU-{prefix}-{i}" for i in range(gpus)]
        for i, uuid in enumerate(uuids[: gpus // 2]):
            GPUFactory(node=node, index=i, uuid=uuid)
        body = write_request_body(
            [s for i, uuid in enumerate(uuids) for s in gpu_series(uuid, Hostname=node.name, gpu=str(i))]
        )
        with CaptureQueriesContext(connection) as queries:
            response = post(writer, body)
        assert response.status_code == 204, response.content
        assert GPU.objects.filter(node=node).count() == gpus
        return len(queries)

    request_queries(1, "warm-up")  # the token's first use is recorded once
    assert request_queries(4, "small") == request_queries(40, "large")


def test_the_endpoint_is_in_the_url_map():
    assert reverse("api:telemetry-remote-write") == URL


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_remote_writes_what_it_scrapes_from_the_simulator(
    prometheus, live_server, make_user, monkeypatch
):
    """Peer test (2): Debian's Prometheus scrapes the fleet simulator and remote-writes into Fleetdeck."""
    import threading
    import time

    from core.services import api_token_create
    from devtools.simulator import FleetSimulator, make_server

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    simulator = FleetSimulator(token="sim-token", seed=3, faults=False)
    simulator.add_node("sim-1", ["H100", "H100"])
    server = make_server(simulator, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = NodeFactory(name="sim-1")  # no GPUs yet: they are registered by the Hostname label
    _, secret = api_token_create(user=make_user(Role.OPERATOR, username="prometheus"), name="rw", read_only=False)
    peer = None
    try:
        peer = prometheus(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "simulator",
                        "metrics_path": "/nodes/sim-1/metrics",
                        "authorization": {"credentials": "sim-token"},
                        "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}],
                    }
                ],
                "remote_write": [
                    {
                        "url": f"{live_server.url}{URL}",
                        "authorization": {"credentials": secret},
                        "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"},
                    }
                ],
            }
        )
        peer.wait_for(lambda: peer.query('up{job="simulator"} == 1'), what="the simulator scraped")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            gpus = list(GPU.objects.filter(node=node))
            if len(gpus) == 2 and all(stored(g.pk) for g in gpus):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no samples arrived within 30 s; Prometheus log:\n{peer.log_tail()}")
        rows = stored(gpus[0].pk)
        assert rows[0][2] is not None and rows[0][3] is not None  # utilisation and power arrived
        health = TelemetrySourceHealth.objects.get(kind=TelemetrySourceKind.REMOTE_WRITE, name="prometheus")
        assert health.samples_total > 0 and health.failed_runs == 0, health.last_error
    finally:
        if peer is not None:  # stopped before the database is emptied: no write may land after the test
            peer.process.terminate()
            peer.process.wait(timeout=10)
        server.shutdown()
        server.server_close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_for_the_same_gpus_do_not_deadlock():
    """Prometheus shards send one GPU's series at once: each request locks its GPUs in one order."""
    import threading

    from django.db import connections

    from fleet.telemetry.remote_write import body_decode, write_request_store

    node = NodeFactory(name="shared")
    uuids = [f"GPU-shared-{i:02d}" for i in range(30)]
    for i, uuid in enumerate(uuids):
        GPUFactory(node=node, index=i, uuid=uuid)
    rounds = 10
    bodies = [
        [
            write_request_body(
                [s for uuid in (uuids if worker == 0 else uuids[::-1]) for s in gpu_series(uuid, T0 + r * 15_000)]
            )
            for r in range(rounds)
        ]
        for worker in range(2)
    ]
    errors = []

    def work(worker: int) -> None:
        try:
            for body in bodies[worker]:
                write_request_store(body_decode(body))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(len(stored(gpu.pk)) for gpu in GPU.objects.filter(node=node)) == len(uuids) * rounds
