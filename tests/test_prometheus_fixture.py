"""Self-test of the shared real-Prometheus fixture (tests/prometheus.py): it starts, answers, scrapes itself, stops."""

from __future__ import annotations

import pytest

from tests import prometheus as prometheus_module


def test_prometheus_peer_starts_scrapes_itself_and_stops(prometheus):
    peer = prometheus({"global": {"scrape_interval": "1s"}, "scrape_configs": []})
    port = peer.url.rsplit(":", 1)[1]
    peer2 = prometheus(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        }
    )
    assert peer.url != peer2.url
    peer2.wait_for(lambda: peer2.targets() and peer2.targets()[0]["health"] == "up", what="self target up")
    up = peer2.wait_for(lambda: peer2.query('up{job="self"}'), what="up series")
    assert up[0]["value"][1] == "1"
    assert peer.query("vector(1)")[0]["value"][1] == "1"
    assert peer.process.poll() is None


def test_missing_binary_skips_outside_ci(prometheus, monkeypatch, tmp_path):
    monkeypatch.setattr(prometheus_module, "PROMETHEUS_BIN", tmp_path / "no-prometheus")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        prometheus({"scrape_configs": []})


def test_missing_binary_fails_in_ci(prometheus, monkeypatch, tmp_path):
    monkeypatch.setattr(prometheus_module, "PROMETHEUS_BIN", tmp_path / "no-prometheus")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        prometheus({"scrape_configs": []})


def test_bad_config_fails_with_the_log(prometheus):
    with pytest.raises(AssertionError, match="exited"):
        prometheus({"scrape_configs": [{"job_name": "x", "no_such_key": 1}]})
