"""The agent's real HTTP server on 127.0.0.1, fetched with urllib: auth, /healthz, failures, gzip."""

from __future__ import annotations

import gzip
import json
import threading

import pynvml
import pytest

from devtools.fake_nvml import FakeClock, FakeNvml
from fleet.agent import exposition as m
from fleet.agent.collector import Collector
from fleet.agent.server import Agent
from tests.fleet.agent.conftest import TOKEN
from tests.fleet.agent.helpers import fetch, parse_exposition


def test_metrics_need_the_bearer_token(serve) -> None:
    base = serve(FakeNvml.from_profile("t4"))
    missing = fetch(f"{base}/metrics")
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="fleetdeck-agent"'
    assert "DCGM" not in missing.text
    assert fetch(f"{base}/metrics", token="wrong-token").status == 401
    assert fetch(f"{base}/metrics", token=TOKEN[:-1]).status == 401
    assert fetch(f"{base}/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status == 401
    assert fetch(f"{base}/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status == 200
    ok = fetch(f"{base}/metrics", token=TOKEN)
    assert ok.status == 200
    assert ok.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    scraped = parse_exposition(ok.text)
    assert scraped.select(m.GPU_TEMP, modelName="Tesla T4", Hostname="node-a", DCGM_FI_DRIVER_VERSION="515.105.01")


def test_without_a_token_configured_metrics_are_open(serve) -> None:
    base = serve(FakeNvml.from_profile("g5"), token=None)
    assert fetch(f"{base}/metrics").status == 200


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="empty token"):
        Agent(Collector(FakeNvml.from_profile("t4")), token="")


def test_healthz_says_little_without_the_token_and_details_with_it(serve) -> None:
    base = serve(FakeNvml.from_profile("dgx-h100"))
    anonymous = fetch(f"{base}/healthz")
    assert anonymous.status == 200
    assert anonymous.headers["Content-Type"] == "application/json"
    assert json.loads(anonymous.body) == {"status": "ok"}
    detailed = json.loads(fetch(f"{base}/healthz", token=TOKEN).body)
    assert detailed == {
        "status": "ok",
        "hostname": "node-a",
        "driver_version": "590.48.01",
        "gpu_count": 8,
        "lost_gpus": [],
        "mig_gpus": [],
        "errors": [],
    }


def test_a_lost_gpu_is_reported_and_the_others_still_served(serve) -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    base = serve(nvml)
    uuid = parse_exposition(fetch(f"{base}/metrics", token=TOKEN).text).select(m.GPU_TEMP, gpu="3")[0].labels["UUID"]
    nvml.lose_gpu(3)
    answer = fetch(f"{base}/metrics", token=TOKEN)
    assert answer.status == 200
    scraped = parse_exposition(answer.text)
    assert {s.labels["gpu"] for s in scraped.select(m.POWER_USAGE)} == {"0", "1", "2", "4", "5", "6", "7"}
    assert scraped.value(m.GPU_LOST, gpu="3", UUID=uuid) == 1
    assert {float(s.value) for s in scraped.select(m.GPU_LOST) if s.labels["gpu"] != "3"} == {0}
    health = fetch(f"{base}/healthz", token=TOKEN)
    assert health.status == 200
    assert json.loads(health.body)["status"] == "degraded"
    assert json.loads(health.body)["lost_gpus"] == [{"gpu": 3, "UUID": uuid}]


def test_missing_driver_answers_503_keeps_serving_and_recovers(serve) -> None:
    nvml = FakeNvml.from_profile("t4")
    nvml.unload_driver(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    base = serve(nvml)
    for _ in range(2):
        down = fetch(f"{base}/metrics", token=TOKEN)
        assert down.status == 503
        assert down.text == "NVML unavailable: nvmlInit failed: NVML Shared Library Not Found\n"
    health = fetch(f"{base}/healthz")
    assert health.status == 503
    assert json.loads(health.body) == {
        "status": "unavailable",
        "reason": "nvmlInit failed: NVML Shared Library Not Found",
    }
    assert fetch(f"{base}/metrics").status == 401  # auth is checked before NVML
    nvml.load_driver()
    assert fetch(f"{base}/metrics", token=TOKEN).status == 200
    assert fetch(f"{base}/healthz").status == 200


def test_driver_retries_wait_for_the_interval(serve, clock: FakeClock) -> None:
    nvml = FakeNvml.from_profile("g5", clock=clock)
    nvml.unload_driver()
    base = serve(nvml, retry_interval_s=30)
    assert fetch(f"{base}/metrics", token=TOKEN).status == 503
    nvml.load_driver()
    assert fetch(f"{base}/metrics", token=TOKEN).status == 503
    clock.advance(30)
    assert fetch(f"{base}/metrics", token=TOKEN).status == 200


def test_a_driver_lost_while_serving_gives_503_then_recovers(serve) -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    base = serve(nvml)
    assert fetch(f"{base}/metrics", token=TOKEN).status == 200
    nvml.unload_driver()
    assert fetch(f"{base}/metrics", token=TOKEN).status == 503
    nvml.load_driver()
    assert fetch(f"{base}/metrics", token=TOKEN).status == 200


def test_not_supported_field_is_omitted_for_that_gpu_only(serve) -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    nvml.fail(0, "nvmlDeviceGetPowerUsage")
    scraped = parse_exposition(fetch(serve(nvml) + "/metrics", token=TOKEN).text)
    assert not scraped.select(m.POWER_USAGE, gpu="0")
    assert scraped.value(m.POWER_USAGE, gpu="1") == pytest.approx(69.85)
    assert scraped.select(m.GPU_TEMP, gpu="0")


def test_field_errors_show_in_healthz(serve) -> None:
    nvml = FakeNvml.from_profile("g5")
    nvml.fail(0, "nvmlDeviceGetClockInfo", pynvml.NVML_ERROR_UNKNOWN)
    health = json.loads(fetch(serve(nvml) + "/healthz", token=TOKEN).body)
    assert health["status"] == "ok"
    assert health["errors"] == [
        "gpu 0: DCGM_FI_DEV_SM_CLOCK: nvmlDeviceGetClockInfo: Unknown Error",
        "gpu 0: DCGM_FI_DEV_MEM_CLOCK: nvmlDeviceGetClockInfo: Unknown Error",
    ]


def test_xid_and_ecc_values_appear(serve) -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    base = serve(nvml)
    fetch(f"{base}/metrics", token=TOKEN)  # the agent registers for XID events on its first read
    nvml.inject_xid(4, 79)
    nvml.add_ecc_errors(2, corrected=5, uncorrected=2)
    scraped = parse_exposition(fetch(f"{base}/metrics", token=TOKEN).text)
    assert scraped.value(m.XID_ERRORS, gpu="4") == 79
    assert scraped.value(m.XID_ERRORS, gpu="0") == 0
    assert scraped.value(m.ECC_SBE_VOL_TOTAL, gpu="2") == 5
    assert scraped.value(m.ECC_DBE_VOL_TOTAL, gpu="2") == 2
    assert scraped.value(m.ECC_DBE_AGG_TOTAL, gpu="2") == 2
    assert scraped.value(m.ECC_DBE_VOL_TOTAL, gpu="3") == 0


def test_load_set_on_the_fake_shows_in_the_scrape(serve) -> None:
    nvml = FakeNvml.from_profile("dgx-h100")
    nvml.set_load(7, util_pct=100, memory_used_mib=19818)
    scraped = parse_exposition(fetch(serve(nvml) + "/metrics", token=TOKEN).text)
    # The H100 capture under gpu-burn: 100 %, 629.45 W, 59 C, SM 1980 MHz, 11 % memory, 19818 MiB used.
    assert scraped.value(m.GPU_UTIL, gpu="7") == 100
    assert scraped.value(m.POWER_USAGE, gpu="7") == pytest.approx(629.45)
    assert scraped.value(m.GPU_TEMP, gpu="7") == 59
    assert scraped.value(m.SM_CLOCK, gpu="7") == 1980
    assert scraped.value(m.MEM_COPY_UTIL, gpu="7") == 11
    assert scraped.value(m.FB_USED, gpu="7") == 19818
    assert scraped.value(m.GPU_UTIL, gpu="6") == 0


def test_gzip_when_asked(serve, clock: FakeClock) -> None:
    base = serve(FakeNvml.from_profile("dgx-h100", clock=clock))
    plain = fetch(f"{base}/metrics", token=TOKEN)
    packed = fetch(f"{base}/metrics", token=TOKEN, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.body) == plain.body
    assert len(packed.body) * 5 < len(plain.body)
    refused = fetch(f"{base}/metrics", token=TOKEN, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers


def test_unknown_paths_are_404(serve) -> None:
    base = serve(FakeNvml.from_profile("t4"))
    assert fetch(f"{base}/", token=TOKEN).status == 404
    assert fetch(f"{base}/metrics/extra", token=TOKEN).status == 404
    assert fetch(f"{base}/metrics?format=text", token=TOKEN).status == 200


class _BrokenNvml(FakeNvml):
    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        raise RuntimeError("a bug, not an NVML error")


def test_an_unexpected_error_gives_500_and_the_server_lives_on(serve) -> None:
    base = serve(_BrokenNvml([FakeNvml.from_profile("t4").gpus[0].model]))
    assert fetch(f"{base}/metrics", token=TOKEN).status == 500
    assert fetch(f"{base}/metrics", token=TOKEN).status == 500
    assert fetch(f"{base}/nothing").status == 404


def test_concurrent_scrapes_all_succeed(serve) -> None:
    base = serve(FakeNvml.from_profile("dgx-h100"))
    statuses: list[int] = []

    def scrape() -> None:
        for _ in range(5):
            statuses.append(fetch(f"{base}/metrics", token=TOKEN).status)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 40


class _CountingNvml(FakeNvml):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.collections = 0

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self.collections += 1
        return super().nvmlDeviceGetCount()


def test_healthz_reuses_a_recent_collection_so_probes_cannot_keep_nvml_busy() -> None:
    clock = FakeClock()
    nvml = _CountingNvml([FakeNvml.from_profile("t4").gpus[0].model])
    agent = Agent(Collector(nvml), token=TOKEN, clock=clock)
    for _ in range(20):
        assert agent.handle("/healthz").status == 200
    assert nvml.collections == 1
    assert agent.handle("/metrics", authorization=f"Bearer {TOKEN}").status == 200
    assert nvml.collections == 2  # /metrics always reads afresh
    nvml.lose_gpu(0)
    clock.advance(4.9)
    assert json.loads(agent.handle("/healthz").body) == {"status": "ok"}
    clock.advance(0.1)
    assert json.loads(agent.handle("/healthz").body) == {"status": "degraded"}
    assert nvml.collections == 3
