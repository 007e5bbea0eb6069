"""One sync and one poll cycle over all three kinds of node: AWS through moto, GCP through the Compute emulator
and the real client, on-prem registered by URL; every node's agent is the simulator (real agent code over a
fake NVML). A failing region and an unreachable node degrade only themselves."""

import threading

import pytest
from botocore.stub import Stubber

from devtools.management.commands.simulate import simulator_sync
from devtools.simulator import FleetSimulator, make_server
from fleet.choices import ProviderKind
from fleet.inventory import aws as aws_adapter
from fleet.inventory.sync import inventory_sync
from fleet.models import GPU, Node
from fleet.telemetry.poll import telemetry_poll
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory, ProviderFactory
from tests.fleet.inventory.conftest import aws, gce  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
TOKEN = "e2e-agent-token"  # noqa: S105 - a test token


@pytest.fixture
def simulator(monkeypatch):
    sim = FleetSimulator(token=TOKEN, seed=4, faults=False)
    server = make_server(sim, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("FLEETDECK_E2E_AGENT_TOKEN", TOKEN)
    sim.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield sim
    server.shutdown()
    server.server_close()


def test_sync_and_poll_cover_aws_gcp_and_onprem(aws, gce, simulator, monkeypatch):  # noqa: F811
    template = f"{simulator.base_url}/nodes/{{name}}/metrics"
    aws_provider = ProviderFactory(
        name="aws-prod",
        credential_ref="",
        regions=["us-east-1", "us-west-2"],
        agent_url_template=template,
        agent_token_ref="env:FLEETDECK_E2E_AGENT_TOKEN",
    )
    gcp_provider = ProviderFactory(
        name="gcp-ml",
        kind=ProviderKind.GCP,
        account_id="fleetdeck-ml",
        credential_ref="",
        agent_url_template=template,
        agent_token_ref="env:FLEETDECK_E2E_AGENT_TOKEN",
    )
    aws.launch("us-east-1", "p4d.24xlarge", tags={"Name": "trainer"})
    aws.launch("us-east-1", "g5.xlarge", tags={"Name": "embedder"})
    gce.seed_demo("fleetdeck-ml")
    dgx = NodeFactory(
        name="dgx-1",
        site=OnPremSiteFactory(),
        lifecycle="owned",
        external_id="",
        telemetry_url=f"{simulator.base_url}/nodes/dgx-1/metrics",
        token_ref="env:FLEETDECK_E2E_AGENT_TOKEN",
    )
    for index in range(8):
        GPUFactory(node=dgx, index=index, uuid=f"GPU-e2e00000-0000-0000-0000-00000000000{index}")
    broken = NodeFactory(
        name="down-1", site=dgx.site, lifecycle="owned", external_id="", telemetry_url="http://127.0.0.1:9/metrics"
    )

    # us-west-2 refuses us (as an account without rights there would); us-east-1 and GCP sync regardless.
    real_ec2_client = aws_adapter.AwsAdapter.ec2_client

    def ec2_client(self, provider, region):
        client = real_ec2_client(self, provider, region)
        if region == "us-west-2":
            stubber = Stubber(client)
            stubber.add_client_error("describe_instances", "UnauthorizedOperation", "not authorised in us-west-2")
            stubber.activate()
        return client

    monkeypatch.setattr(aws_adapter.AwsAdapter, "ec2_client", ec2_client)
    scopes = {s.scope: s for s in inventory_sync(provider=aws_provider).scopes}
    assert scopes["us-east-1"].ok and scopes["us-east-1"].nodes_seen == 2
    assert not scopes["us-west-2"].ok and "UnauthorizedOperation" in scopes["us-west-2"].error
    assert inventory_sync(provider=gcp_provider).ok

    by_kind = {
        kind: Node.objects.filter(site__provider__kind=kind).exclude(state="stopped")
        for kind in (ProviderKind.AWS, ProviderKind.GCP, ProviderKind.ONPREM)
    }
    assert sorted(by_kind[ProviderKind.AWS].values_list("name", flat=True)) == ["embedder", "trainer"]
    assert {n.instance_type for n in by_kind[ProviderKind.GCP]} >= {"a2-highgpu-8g", "a3-highgpu-8g", "g2-standard-8"}
    trainer_gpus = GPU.objects.filter(node__name="trainer")
    assert trainer_gpus.count() == 8 and set(trainer_gpus.values_list("model", flat=True)) == {"NVIDIA A100-SXM4-40GB"}

    simulator_sync(simulator, simulator.base_url)
    report = telemetry_poll()
    polled = Node.objects.exclude(telemetry_url="").filter(state__in=["running", "unreachable"])
    assert report.nodes_polled == polled.count()
    assert report.nodes_ok == polled.count() - 1  # all but the broken one
    assert set(report.errors) == {broken.pk}
    for kind, nodes in by_kind.items():
        running = nodes.filter(state="running").exclude(pk=broken.pk)
        assert running.exists(), kind
        gpus = GPU.objects.filter(node__in=running)
        # Every GPU reported: cloud GPUs now carry the UUID their agent gave, and a latest reading.
        assert not gpus.filter(sampled_at__isnull=True).exists(), kind
        assert not gpus.filter(uuid__isnull=True).exists(), kind
    assert report.samples_added == GPU.objects.filter(sampled_at__isnull=False).count()
