"""AWS inventory through boto3 against moto: regions, GPU shapes from GpuInfo, tags, states, idempotency,
retirement, and one failing region that backs off while the other still syncs."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet.catalog import GPU_SPECS
from fleet.choices import Continent, NodeLifecycle, NodeSource, NodeState
from fleet.inventory import aws as aws_adapter
from fleet.inventory.base import UNKNOWN_GPU_PREFIX
from fleet.inventory.sync import inventory_sync
from fleet.models import GPU, InventoryScope, Node, Site
from tests.factories import NodeFactory, ProjectFactory, ProviderFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db

REGIONS = ["us-east-1", "us-west-2"]
WRITES = ("INSERT INTO", "UPDATE ", "DELETE FROM")
FLEET_TABLES = ('"fleet_node"', '"fleet_gpu"', '"fleet_site"')


def fleet_writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith(WRITES) and any(t in q["sql"] for t in FLEET_TABLES)]


@pytest.fixture
def provider(db):
    return ProviderFactory(name="aws-prod", credential_ref="", regions=REGIONS)


@pytest.fixture
def fleet(aws):
    """Two regions of GPU instances (plus one without GPUs) with team tags, a spot, a stopped, a terminated one."""
    research = TeamFactory(slug="research")
    ProjectFactory(team=research, slug="llm")
    ids = {
        "p5": aws.launch("us-east-1", "p5.48xlarge", tags={"Name": "trainer-0", "team": "research", "project": "llm"}),
        "g5": aws.launch("us-east-1", "g5.xlarge", tags={"Name": "spot-0", "team": "nobody-we-know"}, spot=True),
        "g4dn": aws.launch("us-east-1", "g4dn.xlarge", tags={"Name": "infer-0"}),
        "g6": aws.launch("us-east-1", "g6.xlarge", tags={"Name": "gone-0"}),
        "m5": aws.launch("us-east-1", "m5.large", tags={"Name": "web-0"}),
        "g6e": aws.launch("us-west-2", "g6e.xlarge", tags={"Name": "l40s-0", "team": "research"}),
        "p4d": aws.launch("us-west-2", "p4d.24xlarge", zone="us-west-2b"),
    }
    aws.stop("us-east-1", ids["g4dn"])
    aws.terminate("us-east-1", ids["g6"])
    return ids


def test_sync_lists_gpu_instances_of_every_region_with_their_shapes(provider, fleet, shared_fixtures):
    report = inventory_sync(provider=provider)

    assert report.ok, report
    by_scope = {s.scope: s for s in report.scopes}
    assert (by_scope["us-east-1"].nodes_seen, by_scope["us-west-2"].nodes_seen) == (4, 2)
    nodes = {n.external_id: n for n in Node.objects.select_related("site", "team", "project")}
    assert fleet["m5"] not in nodes
    assert set(nodes) == {fleet[k] for k in ("p5", "g5", "g4dn", "g6", "g6e", "p4d")}

    p5 = nodes[fleet["p5"]]
    assert (p5.name, p5.instance_type, p5.source) == ("trainer-0", "p5.48xlarge", NodeSource.AWS)
    assert (p5.lifecycle, p5.state) == (NodeLifecycle.ON_DEMAND, NodeState.RUNNING)
    assert (p5.team.slug, p5.project.slug) == ("research", "llm")
    assert p5.labels == {"Name": "trainer-0", "team": "research", "project": "llm"}
    assert p5.launched_at is not None
    assert (p5.site.name, p5.site.region, p5.site.zone) == ("aws-prod-us-east-1a", "us-east-1", "us-east-1a")
    assert p5.site.continent == Continent.NORTH_AMERICA
    gpus = list(p5.gpus.order_by("index"))
    assert [g.index for g in gpus] == list(range(8))
    h100 = GPU_SPECS["H100"]
    assert {(g.model, g.memory_mib, g.power_limit_w, g.uuid) for g in gpus} == {
        (h100.nvml_name, 81920, h100.power_limit_w, None)
    }

    spot = nodes[fleet["g5"]]
    assert spot.lifecycle == NodeLifecycle.SPOT
    assert spot.team is None and spot.labels["team"] == "nobody-we-know"
    assert nodes[fleet["g4dn"]].state == NodeState.STOPPED
    assert nodes[fleet["g6"]].state == NodeState.TERMINATED
    assert nodes[fleet["g6e"]].team.slug == "research" and nodes[fleet["g6e"]].project is None
    assert nodes[fleet["p4d"]].site.zone == "us-west-2b"
    assert nodes[fleet["p4d"]].gpus.first().model == GPU_SPECS["A100-40GB"].nvml_name

    # GPU counts and memory are AWS's own GpuInfo (moto's copy of DescribeInstanceTypes).
    records = json.loads((shared_fixtures / "aws" / "moto_instance_types_gpu_only.json").read_text())
    for node in nodes.values():
        info = records[node.instance_type]["GpuInfo"]["Gpus"][0]
        rows = list(GPU.objects.filter(node=node))
        assert len(rows) == info["Count"], node.instance_type
        assert {g.memory_mib for g in rows} == {info["MemoryInfo"]["SizeInMiB"]}, node.instance_type

    scopes = {s.scope: s for s in InventoryScope.objects.filter(provider=provider)}
    assert set(scopes) == set(REGIONS)
    for scope in scopes.values():
        assert scope.ok and scope.last_error == "" and scope.next_attempt_at is None
        assert scope.last_success_at == scope.last_attempt_at


def test_second_sync_writes_nothing(provider, fleet):
    inventory_sync(provider=provider)
    before = list(Node.objects.order_by("pk").values_list("pk", "updated", "state", "name", "labels"))
    gpus_before = list(GPU.objects.order_by("pk").values_list("pk", "model", "memory_mib", "power_limit_w"))

    with CaptureQueriesContext(connection) as queries:
        report = inventory_sync(provider=provider)

    assert report.ok
    assert [(s.created, s.updated, s.retired) for s in report.scopes] == [(0, 0, 0), (0, 0, 0)]
    assert fleet_writes(queries.captured_queries) == []
    assert list(Node.objects.order_by("pk").values_list("pk", "updated", "state", "name", "labels")) == before
    assert list(GPU.objects.order_by("pk").values_list("pk", "model", "memory_mib", "power_limit_w")) == gpus_before
    # A few queries per scope, however many nodes: no N+1.
    assert len(queries) <= 30, [q["sql"] for q in queries.captured_queries]


def test_query_count_does_not_grow_with_nodes(provider, aws):
    aws.launch("us-east-1", "g5.xlarge")
    with CaptureQueriesContext(connection) as few:
        inventory_sync(provider=provider)
    for _ in range(6):
        aws.launch("us-east-1", "g6.xlarge")
        aws.launch("us-west-2", "g5.xlarge")
    with CaptureQueriesContext(connection) as many:
        inventory_sync(provider=provider)
    assert Node.objects.count() == 13
    assert len(many) <= len(few) + 2, [q["sql"] for q in many.captured_queries]


def test_a_changed_tag_updates_only_that_node(provider, fleet, aws):
    inventory_sync(provider=provider)
    before = dict(Node.objects.values_list("external_id", "updated"))
    aws.tag("us-east-1", fleet["g4dn"], team="research")

    report = inventory_sync(provider=provider)

    assert sum(s.updated for s in report.scopes) == 1
    after = dict(Node.objects.values_list("external_id", "updated"))
    assert [ext for ext in after if after[ext] != before[ext]] == [fleet["g4dn"]]
    assert Node.objects.get(external_id=fleet["g4dn"]).team.slug == "research"


def test_an_instance_that_disappears_becomes_terminated(provider, fleet, aws):
    inventory_sync(provider=provider)
    aws.forget("us-east-1", fleet["p5"])

    report = inventory_sync(provider=provider)

    assert {s.scope: s.retired for s in report.scopes} == {"us-east-1": 1, "us-west-2": 0}
    assert Node.objects.get(external_id=fleet["p5"]).state == NodeState.TERMINATED
    assert Node.objects.get(external_id=fleet["g5"]).state == NodeState.RUNNING
    assert GPU.objects.filter(node__external_id=fleet["p5"]).count() == 8  # history stays with the node


def test_manual_and_imported_nodes_are_never_touched(provider, fleet, aws):
    site = SiteFactory(provider=provider, name="aws-prod-us-east-1a", region="us-east-1", zone="us-east-1a")
    mine = NodeFactory(site=site, name="trainer-0", external_id=fleet["p5"], source=NodeSource.MANUAL, labels={})
    unlisted = NodeFactory(site=site, name="hand-made", external_id="i-0123456789abcdef0", source=NodeSource.IMPORT)

    report = inventory_sync(provider=provider)

    east = next(s for s in report.scopes if s.scope == "us-east-1")
    assert any("registered by hand" in w for w in east.warnings)
    mine.refresh_from_db()
    unlisted.refresh_from_db()
    assert (mine.source, mine.labels, mine.state) == (NodeSource.MANUAL, {}, NodeState.RUNNING)
    assert unlisted.state == NodeState.RUNNING
    assert not mine.gpus.exists()


def test_name_clash_in_a_site_gets_the_instance_id(provider, aws):
    first = aws.launch("us-east-1", "g5.xlarge", tags={"Name": "worker"})
    second = aws.launch("us-east-1", "g5.xlarge", tags={"Name": "worker"})
    inventory_sync(provider=provider)
    names = dict(Node.objects.values_list("external_id", "name"))
    assert sorted(names.values()) == sorted(["worker", f"worker-{max(first, second)}"])
    assert sum(s.updated for s in inventory_sync(provider=provider).scopes) == 0


def test_unreachable_from_telemetry_is_not_overwritten_by_running(provider, fleet):
    inventory_sync(provider=provider)
    Node.objects.filter(external_id=fleet["p5"]).update(state=NodeState.UNREACHABLE)
    report = inventory_sync(provider=provider)
    assert sum(s.updated for s in report.scopes) == 0
    assert Node.objects.get(external_id=fleet["p5"]).state == NodeState.UNREACHABLE


REAL_EC2_CLIENT = aws_adapter.AwsAdapter.ec2_client


def _unreachable_in(region: str):
    def ec2_client(self, provider, scope):
        if scope != region:
            return REAL_EC2_CLIENT(self, provider, scope)
        config = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
        return boto3.client("ec2", region_name=scope, endpoint_url="http://127.0.0.1:9", config=config)

    return ec2_client


def test_a_failing_region_backs_off_while_the_other_syncs(provider, fleet, monkeypatch, settings):
    settings.INVENTORY_BACKOFF_BASE_S = 60
    settings.INVENTORY_BACKOFF_MAX_S = 3600
    inventory_sync(provider=provider)  # both regions known
    west_nodes = dict(Node.objects.filter(site__region="us-west-2").values_list("external_id", "state"))
    monkeypatch.setattr(aws_adapter.AwsAdapter, "ec2_client", _unreachable_in("us-west-2"))
    now = timezone.now()

    report = inventory_sync(provider=provider, now=now)

    by_scope = {s.scope: s for s in report.scopes}
    assert by_scope["us-east-1"].ok and not by_scope["us-west-2"].ok
    assert "EndpointConnectionError" in by_scope["us-west-2"].error
    west = InventoryScope.objects.get(provider=provider, scope="us-west-2")
    assert west.consecutive_failures == 1 and west.next_attempt_at == now + timedelta(seconds=60)
    assert "Could not connect to the endpoint URL" in west.last_error
    assert west.nodes_seen == 2  # what it last saw, kept
    east = InventoryScope.objects.get(provider=provider, scope="us-east-1")
    assert east.ok and east.last_success_at == now
    # Nothing in the failing region is retired on the strength of a listing that never came.
    assert dict(Node.objects.filter(site__region="us-west-2").values_list("external_id", "state")) == west_nodes

    skipped = inventory_sync(provider=provider, now=now + timedelta(seconds=30))
    assert {s.scope: s.skipped for s in skipped.scopes} == {"us-east-1": False, "us-west-2": True}
    assert InventoryScope.objects.get(pk=west.pk).consecutive_failures == 1

    inventory_sync(provider=provider, now=now + timedelta(seconds=61))
    west.refresh_from_db()
    assert west.consecutive_failures == 2
    assert west.next_attempt_at == now + timedelta(seconds=61 + 120)

    monkeypatch.setattr(aws_adapter.AwsAdapter, "ec2_client", REAL_EC2_CLIENT)
    recovered = inventory_sync(provider=provider, now=now + timedelta(seconds=200))
    assert recovered.ok
    west.refresh_from_db()
    assert (west.consecutive_failures, west.last_error, west.next_attempt_at) == (0, "", None)


def test_backoff_is_capped(provider, aws, monkeypatch, settings):
    settings.INVENTORY_BACKOFF_BASE_S = 60
    settings.INVENTORY_BACKOFF_MAX_S = 900
    InventoryScope.objects.create(provider=provider, scope="us-west-2", consecutive_failures=20)
    monkeypatch.setattr(aws_adapter.AwsAdapter, "ec2_client", _unreachable_in("us-west-2"))
    now = timezone.now()
    inventory_sync(provider=provider, now=now)
    west = InventoryScope.objects.get(provider=provider, scope="us-west-2")
    assert (west.consecutive_failures, west.next_attempt_at) == (21, now + timedelta(seconds=900))


def test_force_ignores_backoff(provider, aws):
    later = timezone.now() + timedelta(hours=1)
    InventoryScope.objects.create(provider=provider, scope="us-east-1", consecutive_failures=3, next_attempt_at=later)
    assert next(s for s in inventory_sync(provider=provider).scopes if s.scope == "us-east-1").skipped
    report = inventory_sync(provider=provider, force=True)
    assert report.ok and not any(s.skipped for s in report.scopes)


def _stubbed(responses: dict[str, list], region="us-east-1"):
    """An ec2_client replacement whose calls in ``region`` answer with the given responses (or errors)."""

    def ec2_client(self, provider, scope):
        client = boto3.client("ec2", region_name=scope)
        stubber = Stubber(client)
        for method, replies in responses.items() if scope == region else ():
            for reply in replies:
                if isinstance(reply, Exception):
                    stubber.add_client_error(method, **reply.args[0])
                else:
                    stubber.add_response(method, reply)
        if scope != region:
            stubber.add_response("describe_instances", {"Reservations": []})
        stubber.activate()
        return client

    return ec2_client


def _instance(instance_id: str, instance_type: str, **extra) -> dict:
    return {
        "InstanceId": instance_id,
        "InstanceType": instance_type,
        "State": {"Code": 16, "Name": "running"},
        "Placement": {"AvailabilityZone": "us-east-1a"},
        **extra,
    }


def test_access_denied_in_one_region_is_recorded(provider, aws, monkeypatch):
    denied = Exception(
        {
            "service_error_code": "UnauthorizedOperation",
            "service_message": "You are not authorized to perform this operation.",
            "http_status_code": 403,
        }
    )
    monkeypatch.setattr(aws_adapter.AwsAdapter, "ec2_client", _stubbed({"describe_instances": [denied]}))
    report = inventory_sync(provider=provider)
    east = next(s for s in report.scopes if s.scope == "us-east-1")
    assert not east.ok and "UnauthorizedOperation" in east.error and "not authorized" in east.error
    assert next(s for s in report.scopes if s.scope == "us-west-2").ok


def test_wrong_cloud_answers_degrade_gracefully(provider, aws, monkeypatch, shared_fixtures):
    records = json.loads((shared_fixtures / "aws" / "moto_instance_types_gpu_only.json").read_text())
    p5_without_gpu_info = {k: v for k, v in records["p5.48xlarge"].items() if k != "GpuInfo"}
    instances = [
        # GpuInfo missing for a type the catalog knows: GPUs come from the catalog, with a warning.
        _instance("i-00000000000000001", "p5.48xlarge", Tags=[{"Key": "Name", "Value": "no-gpuinfo"}]),
        # A GPU the catalog does not know (AMD, on g4ad): kept as "unknown: …" with AWS's memory figure.
        _instance("i-00000000000000002", "g4ad.xlarge"),
        # No placement: filed under a region-wide site.
        {**_instance("i-00000000000000003", "g4dn.xlarge"), "Placement": {}},
        # No launch time and an unknown state.
        {**_instance("i-00000000000000004", "g4dn.xlarge"), "State": {"Code": 99, "Name": "hibernating"}},
        # Not described at all and unknown to the catalog: not a GPU node we can name.
        _instance("i-00000000000000005", "zz9.mystery"),
        # No instance id: skipped.
        {"InstanceType": "g4dn.xlarge", "State": {"Name": "running"}},
    ]
    type_records = [p5_without_gpu_info, records["g4ad.xlarge"], records["g4dn.xlarge"]]
    monkeypatch.setattr(
        aws_adapter.AwsAdapter,
        "ec2_client",
        _stubbed(
            {
                "describe_instances": [{"Reservations": [{"ReservationId": "r-1", "Instances": instances}]}],
                "describe_instance_types": [{"InstanceTypes": type_records}],
            }
        ),
    )
    report = inventory_sync(provider=provider)

    assert report.ok
    nodes = {n.external_id: n for n in Node.objects.select_related("site")}
    assert set(nodes) == {f"i-0000000000000000{n}" for n in (1, 2, 3, 4)}
    assert GPU.objects.filter(node=nodes["i-00000000000000001"], model=GPU_SPECS["H100"].nvml_name).count() == 8
    amd = GPU.objects.get(node=nodes["i-00000000000000002"])
    assert (amd.model, amd.memory_mib, amd.power_limit_w) == (f"{UNKNOWN_GPU_PREFIX}AMD Radeon Pro V520", 8192, None)
    regional = nodes["i-00000000000000003"].site
    assert (regional.name, regional.region, regional.zone) == ("aws-prod-us-east-1", "us-east-1", "")
    odd = nodes["i-00000000000000004"]
    assert odd.state == NodeState.RUNNING and odd.launched_at is None
    warnings = "\n".join(next(s for s in report.scopes if s.scope == "us-east-1").warnings)
    assert "no GpuInfo" in warnings and "no availability zone" in warnings and "hibernating" in warnings


def test_gpu_info_mapping_covers_real_gpu_types(shared_fixtures):
    records = json.loads((shared_fixtures / "aws" / "moto_instance_types_gpu_only.json").read_text())
    expected = {
        "p5.48xlarge": "H100",
        "p5e.48xlarge": "H200",
        "p4d.24xlarge": "A100-40GB",
        "p4de.24xlarge": "A100-80GB",
        "g5.xlarge": "A10G",
        "g6.xlarge": "L4",
        "g6e.xlarge": "L40S",
        "g4dn.xlarge": "T4",
        "p6-b200.48xlarge": "B200",
    }
    for instance_type, key in expected.items():
        gpus = aws_adapter.gpus_from_gpu_info(records[instance_type]["GpuInfo"])
        assert [g.model for g in gpus] == [GPU_SPECS[key].nvml_name], instance_type
        assert gpus[0].count == records[instance_type]["GpuInfo"]["Gpus"][0]["Count"]
    assert aws_adapter.gpus_from_gpu_info(None) is None
    assert aws_adapter.gpus_from_gpu_info({"Gpus": [{"Name": "A100", "Count": 0}]}) is None
    # Two A100 sizes share a name; without a memory figure the model cannot be told.
    assert aws_adapter.gpus_from_gpu_info({"Gpus": [{"Name": "A100", "Count": 1}]})[0].model.startswith("unknown")


def test_credential_references(provider, aws, monkeypatch):
    aws.launch("us-east-1", "g5.xlarge")
    provider.regions = ["us-east-1"]
    for ref in ("profile:fleetdeck", "env:FLEETDECK_AWS_PROFILE"):
        monkeypatch.setenv("FLEETDECK_AWS_PROFILE", "fleetdeck")
        provider.credential_ref = ref
        assert inventory_sync(provider=provider, force=True).ok, ref

    provider.credential_ref = "profile:missing"
    assert "ProfileNotFound" in inventory_sync(provider=provider, force=True).scopes[0].error
    monkeypatch.delenv("FLEETDECK_AWS_PROFILE")
    provider.credential_ref = "env:FLEETDECK_AWS_PROFILE"
    error = inventory_sync(provider=provider, force=True).scopes[0].error
    assert "FLEETDECK_AWS_PROFILE" in error and "not set" in error


def test_existing_site_for_the_zone_is_reused(provider, aws):
    site = SiteFactory(provider=provider, name="use1a", region="us-east-1", zone="us-east-1a")
    aws.launch("us-east-1", "g5.xlarge")
    inventory_sync(provider=provider)
    assert Node.objects.get().site == site
    assert Site.objects.count() == 1


def test_agent_url_template_registers_discovered_nodes_for_polling(provider, aws):
    """Nodes found in the cloud get the provider's agent URL and token reference; a URL set by hand stays."""
    provider.agent_url_template = "http://{private_ip}:9400/metrics"
    provider.agent_token_ref = "env:FLEETDECK_AGENT_TOKEN"
    provider.full_clean()
    provider.save()
    aws.launch("us-east-1", "g5.xlarge")
    inventory_sync(provider=provider)
    node = Node.objects.get(site__provider=provider)
    assert re.fullmatch(r"http://\d+\.\d+\.\d+\.\d+:9400/metrics", node.telemetry_url), node.telemetry_url
    assert node.token_ref == "env:FLEETDECK_AGENT_TOKEN"
    Node.objects.filter(pk=node.pk).update(telemetry_url="http://override:9400/metrics")
    inventory_sync(provider=provider)
    node.refresh_from_db()
    assert node.telemetry_url == "http://override:9400/metrics"


@pytest.mark.parametrize("template", ["ftp://{private_ip}/m", "http://{ip}:9400/metrics", "http://{private_ip:9400"])
def test_bad_agent_url_templates_are_refused(provider, template):
    provider.agent_url_template = template
    with pytest.raises(ValidationError) as info:
        provider.full_clean()
    assert "agent_url_template" in info.value.message_dict
