"""The poller's trust model: which token references resolve, where tokens go, what errors may say."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from fleet.models import Node
from fleet.telemetry.poll import telemetry_poll
from tests.factories import NodeFactory, ProviderFactory, SiteFactory
from tests.fleet.telemetry.conftest import FakeExporter, dcgm_text, read_request

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)
SECRET = "aws-secret-wJalrXUtnFEMI-K7MDENG"


@pytest.fixture
def secrets_dir(tmp_path, settings):
    folder = tmp_path / "secrets"
    folder.mkdir()
    settings.FLEETDECK_SECRETS_DIR = str(folder)
    return folder


def node_payload(**fields):
    return {
        "site": SiteFactory().pk,
        "name": "gpu-node-1",
        "lifecycle": "spot",
        "telemetry_url": "http://10.0.0.5:9400/metrics",
        "token_ref": "",
        **fields,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token_ref", "env:AWS_SECRET_ACCESS_KEY"),
        ("token_ref", "env:DATABASE_URL"),
        ("token_ref", "file:/etc/passwd"),  # no secrets folder configured: file references are off
        ("telemetry_url", "ftp://10.0.0.5/metrics"),
        ("telemetry_url", "file:///etc/passwd"),
    ],
)
def test_writes_outside_the_allow_list_are_400_naming_the_field(admin_api, field, value):
    response = admin_api.post(reverse("api:node-list"), node_payload(**{field: value}), format="json")
    assert response.status_code == 400 and field in response.data, response.data


def test_file_references_must_lie_inside_the_secrets_folder(admin_api, secrets_dir, tmp_path):
    outside = tmp_path / "outside.token"
    outside.write_text(SECRET)
    (secrets_dir / "escape.token").symlink_to(outside)
    for ref in (f"file:{secrets_dir}/../outside.token", f"file:{secrets_dir}/escape.token", f"file:{secrets_dir}"):
        response = admin_api.post(reverse("api:node-list"), node_payload(token_ref=ref), format="json")
        assert response.status_code == 400 and "token_ref" in response.data, ref
    ok = node_payload(token_ref=f"file:{secrets_dir}/gpu-node-1.token")
    assert admin_api.post(reverse("api:node-list"), ok, format="json").status_code == 201


def test_fleetdeck_variables_are_accepted_and_the_demo_reference_still_works(admin_api):
    payload = node_payload(token_ref="env:FLEETDECK_AGENT_TOKEN")
    assert admin_api.post(reverse("api:node-list"), payload, format="json").status_code == 201


def test_provider_agent_token_ref_has_the_same_allow_list(admin_api):
    provider = ProviderFactory()
    url = reverse("api:provider-detail", args=[provider.pk])
    response = admin_api.patch(url, {"agent_token_ref": "env:AWS_SECRET_ACCESS_KEY"}, format="json")
    assert response.status_code == 400 and "agent_token_ref" in response.data


@pytest.mark.parametrize("ref", ["env:AWS_SECRET_ACCESS_KEY", "file:/etc/passwd"])
def test_old_rows_outside_the_allow_list_never_resolve(exporter, monkeypatch, ref):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    node = NodeFactory(telemetry_url=exporter.url("n1"))
    Node.objects.filter(pk=node.pk).update(token_ref=ref)  # written before validation existed
    exporter.bodies["n1"] = dcgm_text([])
    report = telemetry_poll(now=NOW)
    assert exporter.requests == []  # nothing sent, not even without the token
    assert "not allowed" in report.errors[node.pk]
    node.refresh_from_db()
    assert SECRET not in node.last_poll_error and "root:" not in node.last_poll_error


def test_a_symlink_out_of_the_secrets_folder_does_not_resolve(exporter, secrets_dir, tmp_path):
    outside = tmp_path / "outside.token"
    outside.write_text(SECRET)
    (secrets_dir / "node.token").symlink_to(outside)
    node = NodeFactory(telemetry_url=exporter.url("n1"), token_ref=f"file:{secrets_dir}/node.token")
    exporter.bodies["n1"] = dcgm_text([])
    report = telemetry_poll(now=NOW)
    assert exporter.requests == [] and "not allowed" in report.errors[node.pk]


def test_a_token_file_inside_the_secrets_folder_resolves(exporter, secrets_dir):
    (secrets_dir / "node.token").write_text("s3cret-agent-token\n")
    exporter.token = "s3cret-agent-token"
    node = NodeFactory(telemetry_url=exporter.url("n1"), token_ref=f"file:{secrets_dir}/node.token")
    exporter.bodies["n1"] = dcgm_text([])
    assert telemetry_poll(now=NOW).nodes_ok == 1
    assert exporter.requests[-1] == ("/n1/metrics", "Bearer s3cret-agent-token")
    node.refresh_from_db()
    assert node.last_poll_error == ""


def test_redirects_are_refused_and_the_token_never_follows(exporter, monkeypatch):
    monkeypatch.setenv("FLEETDECK_TEST_AGENT_TOKEN", "s3cret-agent-token")
    collector = FakeExporter()  # another origin, e.g. the attacker's
    try:
        collector.bodies["loot"] = dcgm_text([])
        node = NodeFactory(telemetry_url=exporter.url("n1"), token_ref="env:FLEETDECK_TEST_AGENT_TOKEN")
        exporter.redirects["n1"] = collector.url("loot")
        report = telemetry_poll(now=NOW)
    finally:
        collector.close()
    assert collector.requests == []
    assert report.errors[node.pk] == "redirect refused (HTTP 302 Found)"


def test_errors_never_echo_what_the_server_or_the_token_say(raw_server, monkeypatch):
    def leaky(sock, stop):
        read_request(sock)
        sock.sendall(
            b"HTTP/1.1 500 " + SECRET.encode() + b"\r\nX-Secret: " + SECRET.encode() + b"\r\n"
            b"Content-Length: 12\r\n\r\nroot:x:0:0:\n"
        )

    server = raw_server(leaky)
    leaky_node = NodeFactory(telemetry_url=server.url())
    monkeypatch.setenv("FLEETDECK_MULTILINE_TOKEN", f"first-line\n{SECRET}")
    multiline = NodeFactory(telemetry_url=server.url(), token_ref="env:FLEETDECK_MULTILINE_TOKEN")
    report = telemetry_poll(now=NOW)
    assert report.errors[leaky_node.pk] == "HTTP 500 Internal Server Error"
    assert "not a valid bearer token" in report.errors[multiline.pk]
    for node in Node.objects.all():
        assert SECRET not in node.last_poll_error and "\n" not in node.last_poll_error
        assert "root:" not in node.last_poll_error


def test_an_old_row_with_a_non_http_url_is_that_nodes_error(exporter):
    ftp = NodeFactory(telemetry_url="http://placeholder/")
    Node.objects.filter(pk=ftp.pk).update(telemetry_url="ftp://127.0.0.1/metrics")
    NodeFactory(telemetry_url=exporter.url("ok"))
    exporter.bodies["ok"] = dcgm_text([])
    report = telemetry_poll(now=NOW)
    assert report.errors == {ftp.pk: "not an http(s) URL"} and report.nodes_ok == 1
