"""The real Prometheus (Debian's package) as the peer: it scrapes the Fleetdeck agent without errors, and what the
PromQL source reads back from it is what a direct scrape of the same agent stores (samples and roll-ups)."""

from __future__ import annotations

import threading
import urllib.request
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from devtools.fake_nvml import FakeNvml
from fleet.agent.collector import Collector
from fleet.agent.server import Agent, make_server
from fleet.models import GPU, PromQLSource
from fleet.telemetry.exposition import LABEL_RE
from fleet.telemetry.poll import telemetry_poll
from fleet.telemetry.promql import promql_source_read
from fleet.telemetry.storage import hour_rollup, partitions_ensure
from tests.factories import NodeFactory, OnPremSiteFactory

TOKEN = "peer-test-token-0123456789abcdef0123456789"
HOSTNAME = "gpu-node-1"
SCRAPED_BY_PROMETHEUS = {"instance", "job"}


@pytest.fixture
def agent():
    """The real node agent over a simulated DGX H100 (8 GPUs under a steady load), on a free port."""
    nvml = FakeNvml.from_profile("dgx-h100", seed=11)
    nvml.set_load(util_pct=63)
    nvml.set_load(3, util_pct=7)
    collector = Collector(nvml, hostname=HOSTNAME)
    server = make_server(Agent(collector, token=TOKEN), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"{host}:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    collector.close()


def agent_series(address: str) -> set[tuple[str, frozenset]]:
    """Every series the agent exposes, as (name, labels)."""
    request = urllib.request.Request(f"http://{address}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the local agent
        text = response.read().decode()
    series = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head = line.rsplit(" ", 1)[0]
        name, _, labels = head.partition("{")
        pairs = frozenset((m.group(1), m.group(2)) for m in LABEL_RE.finditer(labels.rstrip("}")))
        series.add((name, pairs))
    return series


def scrape_config(agent_address: str) -> dict:
    """Prometheus scraping the agent every second with its bearer token."""
    jobs = [
        {
            "job_name": "agent",
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "authorization": {"type": "Bearer", "credentials": TOKEN},
            "static_configs": [{"targets": [agent_address]}],
        }
    ]
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}


def wait_scraped(peer, times: int):
    def scraped():
        result = peer.query('count_over_time(up{job="agent"}[1m])')
        return result and int(result[0]["value"][1]) >= times

    peer.wait_for(scraped, timeout=30, what=f"{times} scrapes of the agent")


def test_prometheus_scrapes_the_agent_with_every_series_accepted(prometheus, agent):
    peer = prometheus(scrape_config(agent))
    wait_scraped(peer, 3)
    (target,) = peer.targets()
    assert target["health"] == "up", target
    assert target["lastError"] == ""
    assert peer.query('up{job="agent"}')[0]["value"][1] == "1"
    exposed = agent_series(agent)
    assert len(exposed) > 100  # 8 GPUs × every metric
    samples_scraped = peer.query('scrape_samples_scraped{job="agent"}')[0]["value"][1]
    post_relabel = peer.query('scrape_samples_post_metric_relabeling{job="agent"}')[0]["value"][1]
    assert int(samples_scraped) == int(post_relabel) == len(exposed)
    stored = {
        (
            row["metric"]["__name__"],
            frozenset((k, v) for k, v in row["metric"].items() if k != "__name__" and k not in SCRAPED_BY_PROMETHEUS),
        )
        for row in peer.query('{job="agent", __name__!~"up|scrape_.*"}')
    }
    assert stored == exposed


@pytest.mark.django_db
def test_promql_read_back_matches_a_direct_scrape(prometheus, agent, settings, monkeypatch):
    settings.TELEMETRY_POLL_INTERVAL_S = 1
    settings.TELEMETRY_PROMQL_SETTLE_S = 1
    settings.TELEMETRY_PROMQL_BACKFILL_S = 30  # within one run's 40 steps
    monkeypatch.setenv("FLEETDECK_PEER_AGENT_TOKEN", TOKEN)
    partitions_ensure(now=timezone.now())
    site = OnPremSiteFactory()
    node = NodeFactory(
        site=site, name=HOSTNAME, telemetry_url=f"http://{agent}/metrics", token_ref="env:FLEETDECK_PEER_AGENT_TOKEN"
    )
    peer = prometheus(scrape_config(agent))
    wait_scraped(peer, 5)
    source = PromQLSource.objects.create(name="peer", site=site, url=peer.url, selector='job="agent"')

    report = promql_source_read(source)
    assert report.ok, report.error
    assert report.gpus_created == 8 and report.samples_added >= 8 * 3, report.as_dict()
    assert not report.skipped, report.skipped
    assert set(GPU.objects.filter(node=node).values_list("uuid", flat=True)) == {
        dict(labels)["UUID"] for name, labels in agent_series(agent) if name == "DCGM_FI_DEV_GPU_UTIL"
    }
    via_promql = stored_values()
    rollups_promql = rollups()

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM fleet_gpu_sample")
        cursor.execute("DELETE FROM fleet_gpu_hour")
    now = timezone.now()
    for i in range(3):
        poll = telemetry_poll(node_ids=[node.pk], now=now + timedelta(seconds=i))
        assert poll.nodes_ok == 1 and poll.gpus_created == 0 and poll.samples_added == 8, poll.as_dict()
    direct = stored_values()
    assert via_promql.keys() == direct.keys()
    for uuid, values in direct.items():
        assert len(values) == 1, (uuid, values)  # the agent's values hold steady
        assert via_promql[uuid] == values, uuid
    assert rollups_promql.keys() == rollups().keys()
    for uuid, row in rollups().items():
        assert rollups_promql[uuid] == pytest.approx(row, rel=1e-6), uuid


def stored_values() -> dict[str, set[tuple]]:
    """Per GPU UUID: the distinct (util, power, memory, temperature, SM clock) values of its samples."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT g.uuid, s.util_pct, s.power_w, s.mem_used_mib, s.temp_c, s.sm_clock_mhz
               FROM fleet_gpu_sample s JOIN fleet_gpu g ON g.id = s.gpu_id"""
        )
        values: dict[str, set[tuple]] = {}
        for uuid, *row in cursor.fetchall():
            values.setdefault(uuid, set()).add(tuple(row))
        return values


def rollups() -> dict[str, tuple]:
    """Per GPU UUID: its hour roll-up's averages and maxima, computed from the samples now stored."""
    now = timezone.now()
    hour_rollup(start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT g.uuid, h.util_avg, h.util_max, h.power_avg_w, h.power_max_w, h.mem_used_max_mib, h.temp_max_c
               FROM fleet_gpu_hour h JOIN fleet_gpu g ON g.id = h.gpu_id"""
        )
        return {uuid: tuple(float(v) for v in row) for uuid, *row in cursor.fetchall()}
