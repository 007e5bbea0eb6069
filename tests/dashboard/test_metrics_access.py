"""Who may read /metrics: the allowed networks, the bearer token, no login session needed; bad settings refused.

Plus the request-latency histogram the middleware keeps (core.metrics), by URL pattern name, method and status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.urls import path
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from dashboard import metrics_access
from dashboard.metrics_access import address_allowed, networks_parse

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-metrics-token"
HOSTILE_VIEW = 'we"ird\\view\nname {x="1"}'
# The URLconf of test_a_hostile_view_name_is_escaped_and_parses_back (pytest.mark.urls).
urlpatterns = [
    path("hostile/", login_not_required(lambda request: HttpResponse("ok")), name=HOSTILE_VIEW),
    path("metrics", metrics_access.metrics),
]


def get(client, *, addr="127.0.0.1", **headers):
    return client.get("/metrics", REMOTE_ADDR=addr, **headers)


@pytest.mark.django_db
def test_loopback_reads_the_metrics_without_a_login_by_default(client):
    response = get(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"fleetdeck_report_deliveries", "fleetdeck_metrics_collector_up"} <= names
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.parametrize("addr", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "not-an-address", ""])
def test_addresses_outside_the_allowed_networks_are_refused(client, addr):
    response = get(client, addr=addr)
    assert response.status_code == 403
    assert b"METRICS_ALLOWED_NETWORKS" in response.content
    assert b"fleetdeck_" not in response.content


@pytest.mark.django_db
def test_ipv6_loopback_and_an_ipv4_mapped_address_are_inside(client):
    assert get(client, addr="::1").status_code == 200
    assert get(client, addr="::ffff:127.0.0.1").status_code == 200


@pytest.mark.django_db
def test_a_configured_token_is_required_missing_401_wrong_403_right_200(client, settings):
    settings.METRICS_TOKEN = TOKEN
    missing = get(client)
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert get(client, HTTP_AUTHORIZATION="Basic " + TOKEN).status_code == 401
    assert get(client, HTTP_AUTHORIZATION="Bearer").status_code == 401
    assert get(client, HTTP_AUTHORIZATION="Bearer " + TOKEN + "x").status_code == 403
    assert get(client, HTTP_AUTHORIZATION="Bearer " + TOKEN[:-1]).status_code == 403
    assert get(client, HTTP_AUTHORIZATION="Bearer " + TOKEN).status_code == 200
    assert get(client, HTTP_AUTHORIZATION="bearer " + TOKEN).status_code == 200  # the scheme is case-insensitive


@pytest.mark.django_db
def test_the_right_token_from_outside_the_networks_is_still_refused(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert get(client, addr="10.9.9.9", HTTP_AUTHORIZATION="Bearer " + TOKEN).status_code == 403


@pytest.mark.django_db
def test_token_only_any_address_with_the_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    assert get(client, addr="203.0.113.5", HTTP_AUTHORIZATION="Bearer " + TOKEN).status_code == 200
    assert get(client, addr="203.0.113.5").status_code == 401


@pytest.mark.django_db
def test_neither_token_nor_networks_closes_the_endpoint_rather_than_opening_it(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    response = get(client)
    assert response.status_code == 403
    assert b"closed" in response.content


@pytest.mark.django_db
def test_a_local_reverse_proxy_does_not_open_the_endpoint_to_its_clients(client, settings):
    # nginx on the same host forwards every outside client from 127.0.0.1: the loopback default must not let
    # them in. Only a token (or trusting the proxy's X-Forwarded-For) can.
    assert settings.METRICS_ALLOWED_NETWORKS == ["127.0.0.1/32", "::1/128"]
    assert get(client, addr="127.0.0.1").status_code == 200
    assert get(client, addr="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 403
    assert get(client, addr="127.0.0.1", HTTP_FORWARDED="for=198.51.100.7").status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_TOKEN = TOKEN
    proxied = {"HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_AUTHORIZATION": "Bearer " + TOKEN}
    assert get(client, addr="127.0.0.1", **proxied).status_code == 200


@pytest.mark.django_db
def test_x_forwarded_for_is_ignored_unless_trusted(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    # A client outside cannot get in by claiming an inside address …
    assert get(client, addr="203.0.113.5", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 403
    settings.METRICS_TRUST_X_FORWARDED_FOR = True
    # … and behind a trusted proxy the proxy's own (last) entry counts, not what the client put first.
    assert get(client, addr="172.16.0.2", HTTP_X_FORWARDED_FOR="10.0.0.1, 203.0.113.5").status_code == 403
    assert get(client, addr="172.16.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5, 10.0.0.7").status_code == 200


@pytest.mark.django_db
def test_only_get_is_answered(client):
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


def test_networks_parse_reads_cidrs_and_refuses_a_bad_one_clearly():
    assert [str(n) for n in networks_parse(["10.0.0.0/8", " ::1/128 ", "192.168.1.5"])] == [
        "10.0.0.0/8",
        "::1/128",
        "192.168.1.5/32",
    ]
    assert address_allowed("10.200.0.1", networks_parse(["10.0.0.0/8"]))
    assert not address_allowed("11.0.0.1", networks_parse(["10.0.0.0/8"]))
    with pytest.raises(ImproperlyConfigured, match=r"'10\.0\.0\.0/33' is not a network"):
        networks_parse(["10.0.0.0/33"])


def test_a_bad_network_setting_stops_the_app_at_start_with_a_clear_message():
    env = {
        **os.environ,
        "DEBUG": "true",
        "METRICS_ALLOWED_NETWORKS": "127.0.0.1/32,localhost",
        "FLEETDECK_ENV_FILE": "",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS: 'localhost' does not appear to be an IPv4 or IPv6 network" in result.stderr


def _count(view: str, method: str, status: str) -> float:
    labels = {"view": view, "method": method, "status": status}
    return REGISTRY.get_sample_value("fleetdeck_http_request_duration_seconds_count", labels) or 0.0


@pytest.mark.django_db
def test_requests_are_timed_by_url_name_method_and_status(client):
    before = (
        _count("healthz", "GET", "200"),
        _count("<unresolved>", "GET", "404"),
        _count("healthz", "other", "405"),
        _count("overview", "GET", "302"),
    )
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page/12345")
    client.generic("BREW", "/healthz")  # an invented method becomes "other", not a new label value
    client.get("/")  # the overview, not logged in: redirected to the login page
    after = (
        _count("healthz", "GET", "200"),
        _count("<unresolved>", "GET", "404"),
        _count("healthz", "other", "405"),
        _count("overview", "GET", "302"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [3, 1, 1, 1]
    assert REGISTRY.get_sample_value("fleetdeck_http_request_duration_seconds_count", {"method": "BREW"}) is None


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_hostile_view_name_is_escaped_and_parses_back(client):
    before = _count(HOSTILE_VIEW, "GET", "200")
    client.get("/hostile/")
    text = get(client).content.decode()
    assert 'view="we\\"ird\\\\view\\nname {x=\\"1\\"}"' in text
    counts = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fleetdeck_http_request_duration_seconds_count" and sample.labels["view"] == HOSTILE_VIEW
    ]
    assert counts == [before + 1]
