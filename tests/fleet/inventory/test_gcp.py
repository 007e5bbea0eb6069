"""GCP inventory through the real google-cloud-compute client (REST) against devtools.emulators.gce."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fleet.catalog import GPU_SPECS
from fleet.choices import Continent, NodeLifecycle, NodeSource, NodeState, ProviderKind
from fleet.inventory import gcp
from fleet.inventory.base import UNKNOWN_GPU_PREFIX, UNKNOWN_MEMORY_MIB, DiscoveryError
from fleet.inventory.sync import inventory_sync
from fleet.models import GPU, InventoryScope, Node
from tests.factories import ProjectFactory, ProviderFactory, TeamFactory

pytestmark = pytest.mark.django_db

PROJECT = "ml-research-1"


def gcp_provider(project: str = PROJECT, **kwargs):
    return ProviderFactory(
        name=f"gcp-{project}", kind=ProviderKind.GCP, account_id=project, credential_ref="adc", **kwargs
    )


def aggregated_calls(gce) -> list[str]:
    return [r for r in gce.requests if "/aggregated/instances" in r]


@pytest.fixture
def project(gce):
    """A project with T4 and L4 guest accelerators, a2/a3 machines with built-in GPUs, a spot and a stopped VM."""
    research = TeamFactory(slug="research")
    ProjectFactory(team=research, slug="llm")
    labels = {"team": "research", "project": "llm"}
    gce.add_instance(
        PROJECT,
        "europe-west4-a",
        "t4-batch-0",
        machine_type="n1-standard-8",
        accelerators=[("nvidia-tesla-t4", 2)],
        spot=True,
    )
    gce.add_instance(
        PROJECT, "us-central1-c", "l4-serve-0", machine_type="g2-standard-4", accelerators=[("nvidia-l4", 1)]
    )
    gce.add_instance(PROJECT, "us-central1-a", "a100-0", machine_type="a2-highgpu-1g", labels=labels)
    gce.add_instance(PROJECT, "us-central1-a", "a100-1", machine_type="a2-highgpu-1g", labels={"team": "research"})
    gce.add_instance(PROJECT, "us-central1-b", "h100-0", machine_type="a3-highgpu-8g", labels=labels, preemptible=True)
    gce.add_instance(PROJECT, "us-central1-b", "l4-stopped", machine_type="g2-standard-8", status="TERMINATED")
    gce.add_instance(PROJECT, "us-central1-a", "web-0", machine_type="e2-standard-4")
    return gce


def test_sync_lists_gpu_vms_with_accelerators_and_built_in_gpus(project):
    provider = gcp_provider()
    report = inventory_sync(provider=provider)

    assert report.ok, report
    assert [(s.scope, s.nodes_seen, s.created) for s in report.scopes] == [(PROJECT, 6, 6)]
    nodes = {n.name: n for n in Node.objects.select_related("site", "team", "project")}
    assert set(nodes) == {"t4-batch-0", "l4-serve-0", "a100-0", "a100-1", "h100-0", "l4-stopped"}

    def gpus(name):
        return [(g.model, g.memory_mib, g.power_limit_w) for g in nodes[name].gpus.order_by("index")]

    t4, l4, a100, h100 = (GPU_SPECS[k] for k in ("T4", "L4", "A100-40GB", "H100"))
    assert gpus("t4-batch-0") == [(t4.nvml_name, t4.memory_mib, t4.power_limit_w)] * 2
    assert gpus("l4-serve-0") == [(l4.nvml_name, l4.memory_mib, l4.power_limit_w)]
    assert gpus("a100-0") == [(a100.nvml_name, 40960, 400)]
    assert gpus("h100-0") == [(h100.nvml_name, 81920, 700)] * 8
    assert gpus("l4-stopped") == [(l4.nvml_name, l4.memory_mib, l4.power_limit_w)]
    assert GPU.objects.filter(uuid__isnull=False).count() == 0

    t4_node = nodes["t4-batch-0"]
    assert (t4_node.lifecycle, t4_node.instance_type, t4_node.source) == (
        NodeLifecycle.SPOT,
        "n1-standard-8",
        NodeSource.GCP,
    )
    assert (t4_node.site.name, t4_node.site.region, t4_node.site.zone) == (
        f"gcp-{PROJECT}-europe-west4-a",
        "europe-west4",
        "europe-west4-a",
    )
    assert t4_node.site.continent == Continent.EUROPE
    assert nodes["h100-0"].lifecycle == NodeLifecycle.SPOT  # preemptible
    assert nodes["a100-0"].lifecycle == NodeLifecycle.ON_DEMAND
    assert (nodes["a100-0"].team.slug, nodes["a100-0"].project.slug) == ("research", "llm")
    assert nodes["a100-1"].team.slug == "research" and nodes["a100-1"].project is None
    assert nodes["l4-stopped"].state == NodeState.STOPPED  # GCE's TERMINATED is a stopped VM
    assert nodes["a100-0"].state == NodeState.RUNNING
    assert nodes["a100-0"].external_id.isdigit() and nodes["a100-0"].launched_at is not None
    assert nodes["a100-0"].labels == {"team": "research", "project": "llm"}

    # Built-in GPUs are looked up once per machine type, however many VMs use it.
    machine_type_calls = [r for r in project.requests if "/machineTypes/" in r]
    assert sorted(r.split("/machineTypes/")[1] for r in machine_type_calls) == [
        "a2-highgpu-1g",
        "a3-highgpu-8g",
        "g2-standard-8",
    ]
    scope = InventoryScope.objects.get(provider=provider)
    assert (scope.scope, scope.ok, scope.nodes_seen) == (PROJECT, True, 6)


def test_pagination_reads_every_page(project, monkeypatch):
    monkeypatch.setattr(gcp, "GCP_PAGE_SIZE", 2)
    report = inventory_sync(provider=gcp_provider())
    assert report.scopes[0].nodes_seen == 6
    calls = aggregated_calls(project)
    assert len(calls) == 4 and all("maxResults=2" in c for c in calls)
    assert sum("pageToken=" in c for c in calls) == 3


def test_second_sync_writes_nothing(project):
    provider = gcp_provider()
    inventory_sync(provider=provider)
    before = list(Node.objects.order_by("pk").values_list("pk", "updated", "state", "labels", "launched_at"))
    with CaptureQueriesContext(connection) as queries:
        report = inventory_sync(provider=provider)
    assert (report.scopes[0].created, report.scopes[0].updated, report.scopes[0].retired) == (0, 0, 0)
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    assert [w for w in writes if "fleet_inventoryscope" not in w] == []
    assert list(Node.objects.order_by("pk").values_list("pk", "updated", "state", "labels", "launched_at")) == before


def test_deleted_vm_is_retired_and_a_started_one_updated(project):
    provider = gcp_provider()
    inventory_sync(provider=provider)
    project.remove_instance(PROJECT, "a100-1")
    project.update_instance(PROJECT, "l4-stopped", status="RUNNING")

    report = inventory_sync(provider=provider)

    assert (report.scopes[0].retired, report.scopes[0].updated) == (1, 1)
    assert Node.objects.get(name="a100-1").state == NodeState.TERMINATED
    assert Node.objects.get(name="l4-stopped").state == NodeState.RUNNING


def test_regions_limit_the_listing_and_what_is_retired(project):
    provider = gcp_provider()
    inventory_sync(provider=provider)
    provider.regions = ["us-central1"]
    provider.save()

    report = inventory_sync(provider=provider)

    assert report.scopes[0].nodes_seen == 5
    # europe-west4 is outside the configured regions: not listed, and so not retired either.
    assert Node.objects.get(name="t4-batch-0").state == NodeState.RUNNING


def test_a_403_project_is_recorded_while_another_project_syncs(project, gce):
    gce.add_instance("ml-research-2", "us-central1-a", "other-a100", machine_type="a2-highgpu-1g")
    denied, fine = gcp_provider(), gcp_provider("ml-research-2")
    gce.fail(PROJECT, 403)

    denied_report = inventory_sync(provider=denied)
    fine_report = inventory_sync(provider=fine)

    assert not denied_report.ok and fine_report.ok
    assert "Forbidden" in denied_report.scopes[0].error
    scope = InventoryScope.objects.get(provider=denied)
    assert scope.consecutive_failures == 1 and scope.next_attempt_at is not None
    assert "Required 'compute.instances.list' permission" in scope.last_error
    assert Node.objects.get().name == "other-a100"
    assert len(aggregated_calls(gce)) == 2  # 403 is not retried


def test_a_rate_limit_is_retried_and_then_succeeds(project):
    project.fail(PROJECT, 429, times=1)
    report = inventory_sync(provider=gcp_provider())
    assert report.ok and report.scopes[0].nodes_seen == 6
    assert len(aggregated_calls(project)) == 2


def test_persistent_server_errors_fail_the_scope_after_bounded_retries(project):
    project.fail(PROJECT, 500)
    report = inventory_sync(provider=gcp_provider())
    assert not report.ok
    assert "InternalServerError" in report.scopes[0].error or "RetryError" in report.scopes[0].error
    assert 2 <= len(aggregated_calls(project)) < 40


def test_a_failure_on_a_later_page_retires_nothing(project, monkeypatch):
    provider = gcp_provider()
    inventory_sync(provider=provider)
    monkeypatch.setattr(gcp, "GCP_PAGE_SIZE", 2)
    project.fail(PROJECT, 403, after=1)

    report = inventory_sync(provider=provider, force=True)

    assert not report.ok
    assert not Node.objects.filter(state=NodeState.TERMINATED).exists()


def test_unreachable_endpoint_is_recorded(db, settings):
    settings.GCP_COMPUTE_ENDPOINT = "http://127.0.0.1:9"
    report = inventory_sync(provider=gcp_provider())
    assert not report.ok and "ConnectionError" in report.scopes[0].error


def test_wrong_cloud_answers_degrade_gracefully(gce, caplog):
    url = "https://www.googleapis.com/compute/v1/projects/ml-research-1/zones/us-central1-a"
    gce.add_instance(
        PROJECT,
        "us-central1-a",
        "v100-0",
        machine_type="n1-standard-8",
        accelerators=[("nvidia-tesla-v100", 4)],
        created="not a timestamp",
    )
    no_zone = gce.add_instance(PROJECT, "us-central1-a", "no-zone", machine_type="a2-highgpu-1g")
    del no_zone["zone"]
    gce.add_instance(PROJECT, "us-central1-a", "odd-status", machine_type="g2-standard-4", status="HIBERNATING")
    gce.add_instance(
        PROJECT, "us-central1-a", "naive-time", machine_type="g2-standard-4", created="2025-03-06T03:53:56"
    )
    gce.add_instance(PROJECT, "us-central1-a", "unknown-type", machine_type="a2-imaginary-9g")
    gce.add_raw_instance(
        PROJECT, "us-central1-a", {"name": "no-id", "machineType": f"{url}/machineTypes/g2-standard-4"}
    )
    gce.add_raw_instance(PROJECT, "us-central1-a", {"id": "77", "name": "bare", "machineType": "", "status": "RUNNING"})

    report = inventory_sync(provider=gcp_provider())

    assert report.ok
    nodes = {n.name: n for n in Node.objects.select_related("site")}
    assert set(nodes) == {"v100-0", "no-zone", "odd-status", "naive-time"}
    v100 = list(nodes["v100-0"].gpus.values_list("model", "memory_mib", "power_limit_w"))
    assert v100 == [(f"{UNKNOWN_GPU_PREFIX}nvidia-tesla-v100", UNKNOWN_MEMORY_MIB, None)] * 4
    assert nodes["v100-0"].launched_at is None and nodes["naive-time"].launched_at is None
    assert nodes["no-zone"].site.zone == "us-central1-a"  # from the aggregated list's scope key
    assert nodes["odd-status"].state == NodeState.RUNNING
    warnings = "\n".join(report.scopes[0].warnings)
    for expected in ("nvidia-tesla-v100", "unreadable timestamp", "HIBERNATING", "without a time zone"):
        assert expected in warnings, expected
    # A VM that cannot be described is left out, and the log says why.
    assert "unknown-type skipped: machine type a2-imaginary-9g not found" in caplog.text


def test_credential_references_without_an_emulator(settings, monkeypatch, tmp_path):
    settings.GCP_COMPUTE_ENDPOINT = ""
    monkeypatch.delenv("FLEETDECK_GCP_KEY", raising=False)
    with pytest.raises(DiscoveryError, match="FLEETDECK_GCP_KEY"):
        gcp.client_auth("env:FLEETDECK_GCP_KEY")
    monkeypatch.setenv("FLEETDECK_GCP_KEY", str(tmp_path / "missing.json"))
    with pytest.raises(DiscoveryError, match="unusable"):
        gcp.client_auth("env:FLEETDECK_GCP_KEY")
    (tmp_path / "bad.json").write_text("{}")
    monkeypatch.setenv("FLEETDECK_GCP_KEY", str(tmp_path / "bad.json"))
    with pytest.raises(DiscoveryError, match="unusable"):
        gcp.client_auth("env:FLEETDECK_GCP_KEY")
    with pytest.raises(DiscoveryError, match="not usable for GCP"):
        gcp.client_auth("profile:fleetdeck")


def test_accelerator_names_map_to_nvml_names():
    warnings: list[str] = []
    pairs = [(name, 1) for name in gcp.ACCELERATORS]
    models = {g.model for g in gcp.gpus_from_accelerators(pairs, warnings)}
    assert warnings == []
    assert models == {GPU_SPECS[k].nvml_name for k in ("T4", "L4", "A100-40GB", "A100-80GB", "H100", "H200", "B200")}
    assert gcp.gpus_from_accelerators([("nvidia-l4", 0)], warnings) is None
