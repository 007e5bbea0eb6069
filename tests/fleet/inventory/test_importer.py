"""On-prem bulk import (fleet/inventory/importer.py and ``manage.py import_nodes``): CSV and YAML, all or nothing,
a clear message per bad row, and re-imports that update rather than duplicate."""

from __future__ import annotations

import re

import pytest
from django.core.management import CommandError, call_command

from fleet.catalog import GPU_SPECS
from fleet.choices import NodeLifecycle, NodeSource, NodeState
from fleet.inventory.importer import NodeImportError, node_import
from fleet.models import GPU, Node
from tests.conftest import ROOT
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory, ProjectFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _secrets_dir(settings):
    """The folder the token files of these examples lie in."""
    settings.FLEETDECK_SECRETS_DIR = "/etc/fd"


HEADER = "site,name,instance_type,telemetry_url,token_ref,team,project,labels,gpu_model,gpu_count"
GOOD_CSV = f"""{HEADER}
dc-ams1,dgx-01,dgx-h100,http://10.0.0.11:9400/metrics,env:FLEETDECK_DCGM_TOKEN,research,llm,rack=a12;row=4,H100,8
dc-ams1,dgx-02,dgx-h100,http://10.0.0.12:9400/metrics,file:/etc/fd/token,research,,rack=a12,NVIDIA H100 80GB HBM3,8
dc-ams1,t4-01,,,,,,,T4,2
"""
GOOD_YAML = """
nodes:
  - site: dc-ams1
    name: l40s-01
    instance_type: l40s-4x
    telemetry_url: http://10.0.1.21:9400/metrics
    token_ref: env:FLEETDECK_DCGM_TOKEN
    team: research
    project: llm
    labels: {rack: b03, cooling: liquid}
    gpu_model: L40S
    gpu_count: 4
  - site: dc-ams1
    name: a100-01
    gpu_model: NVIDIA A100-SXM4-80GB
    gpu_count: 8
    labels: "rack=b04"
"""


@pytest.fixture
def site():
    research = TeamFactory(slug="research")
    ProjectFactory(team=research, slug="llm")
    return OnPremSiteFactory(name="dc-ams1")


def rows() -> dict[str, Node]:
    return {n.name: n for n in Node.objects.select_related("team", "project")}


def test_good_csv_creates_nodes_with_gpus(site):
    report = node_import(text=GOOD_CSV, fmt="csv")

    assert (report.created, report.updated, report.unchanged, report.gpus_changed) == (3, 0, 0, 18)
    nodes = rows()
    dgx = nodes["dgx-01"]
    assert (dgx.site, dgx.instance_type, dgx.lifecycle, dgx.source) == (
        site,
        "dgx-h100",
        NodeLifecycle.OWNED,
        NodeSource.IMPORT,
    )
    assert (dgx.team.slug, dgx.project.slug, dgx.labels) == ("research", "llm", {"rack": "a12", "row": "4"})
    assert (dgx.telemetry_url, dgx.token_ref, dgx.state) == (
        "http://10.0.0.11:9400/metrics",
        "env:FLEETDECK_DCGM_TOKEN",
        NodeState.RUNNING,
    )
    h100 = GPU_SPECS["H100"]
    assert list(dgx.gpus.values_list("index", "model", "memory_mib", "power_limit_w", "uuid")) == [
        (i, h100.nvml_name, h100.memory_mib, h100.power_limit_w, None) for i in range(8)
    ]
    assert nodes["dgx-02"].gpus.count() == 8 and nodes["dgx-02"].project is None
    assert nodes["t4-01"].gpus.get(index=1).model == GPU_SPECS["T4"].nvml_name
    assert nodes["t4-01"].team is None and nodes["t4-01"].labels == {}


def test_good_yaml_creates_nodes(site):
    report = node_import(text=GOOD_YAML, fmt="yaml")
    assert (report.created, report.updated) == (2, 0)
    nodes = rows()
    assert nodes["l40s-01"].labels == {"rack": "b03", "cooling": "liquid"}
    assert nodes["l40s-01"].gpus.count() == 4
    assert nodes["a100-01"].labels == {"rack": "b04"}
    assert set(nodes["a100-01"].gpus.values_list("model", flat=True)) == {"NVIDIA A100-SXM4-80GB"}
    # A plain list of nodes works as well as the {nodes: [...]} form.
    plain = "- {site: dc-ams1, name: t4-09, gpu_model: T4, gpu_count: 1}\n"
    assert node_import(text=plain, fmt="yaml").created == 1


def test_reimport_updates_rather_than_duplicates(site):
    node_import(text=GOOD_CSV, fmt="csv")
    first = {n.name: (n.pk, n.updated) for n in Node.objects.all()}
    GPU.objects.filter(node__name="dgx-01", index=0).update(uuid="GPU-8b2c0000-aaaa-bbbb-cccc-000000000001")

    again = node_import(text=GOOD_CSV, fmt="csv")
    assert (again.created, again.updated, again.unchanged, again.gpus_changed) == (0, 0, 3, 0)
    assert {n.name: (n.pk, n.updated) for n in Node.objects.all()} == first

    changed = GOOD_CSV.replace("T4,2", "T4,1").replace("rack=a12;row=4", "rack=a13")
    report = node_import(text=changed, fmt="csv")
    assert (report.created, report.updated, report.unchanged, report.gpus_changed) == (0, 1, 2, 1)
    assert Node.objects.get(name="dgx-01").labels == {"rack": "a13"}
    assert Node.objects.get(name="t4-01").gpus.count() == 1
    # GPUs telemetry has already identified keep their UUID.
    assert GPU.objects.get(node__name="dgx-01", index=0).uuid == "GPU-8b2c0000-aaaa-bbbb-cccc-000000000001"
    assert Node.objects.count() == 3


def test_a_manually_registered_node_is_taken_over_by_the_import(site):
    existing = NodeFactory(site=site, name="t4-01", external_id="", lifecycle=NodeLifecycle.OWNED)
    GPUFactory(node=existing, index=0)
    report = node_import(text=GOOD_CSV, fmt="csv")
    assert (report.created, report.updated) == (2, 1)
    existing.refresh_from_db()
    assert existing.source == NodeSource.IMPORT
    assert existing.gpus.count() == 2


def _errors(text: str, fmt: str = "csv") -> list[str]:
    before = (Node.objects.count(), GPU.objects.count())
    with pytest.raises(NodeImportError) as info:
        node_import(text=text, fmt=fmt)
    assert (Node.objects.count(), GPU.objects.count()) == before, "a bad file must write nothing"
    return info.value.errors


def csv_with(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


GOOD_ROW = "dc-ams1,ok-01,,,,,,,T4,1"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("dc-x,n1,,,,,,,T4,1", "row 2: site 'dc-x' does not exist"),
        ("dc-ams1,n1,,,AKIAIOSFODNN7EXAMPLE,,,,T4,1", "row 2: token_ref: Use a reference, never the token"),
        ("dc-ams1,n1,,not-a-url,,,,,T4,1", "row 2: telemetry_url: Enter a valid URL."),
        ("dc-ams1,n1,,,,,,,V100,1", "row 2: gpu_model 'V100' is not a known GPU"),
        ("dc-ams1,n1,,,,,,rack,T4,1", "row 2: labels: 'rack' is not key=value"),
        ("dc-ams1,n1,,,,,,,T4,many", "row 2: gpu_count 'many' must be a whole number from 1 to 64"),
        ("dc-ams1,n1,,,,,,,T4,0", "row 2: gpu_count '0' must be a whole number"),
        ("dc-ams1,n1,,,,nobody,,,T4,1", "row 2: team 'nobody' does not exist"),
        ("dc-ams1,n1,,,,research,nothing,,T4,1", "row 2: project 'nothing' does not exist in team 'research'"),
        ("dc-ams1,n1,,,,,llm,,T4,1", "row 2: project 'llm' needs its team"),
        ("dc-ams1,,,,,,,,T4,1", "row 2: name is required"),
        ("dc-ams1,n1,,,,,,,T4", "row 2: 9 cells, but the header names 10 columns"),
    ],
)
def test_bad_csv_rows_name_the_row_and_the_problem(site, line, expected):
    errors = _errors(csv_with(GOOD_ROW, line))
    assert any(e.startswith(expected) for e in errors), errors
    assert not any(e.startswith("row 1") for e in errors), errors


def test_cloud_site_is_refused(site):
    cloud = SiteFactory(name="aws-use1")
    assert _errors(csv_with("aws-use1,n1,,,,,,,T4,1")) == [
        f"row 1: site 'aws-use1' belongs to AWS provider {cloud.provider.name!r}; import is for on-prem"
    ]


def test_duplicate_names_in_a_file(site):
    errors = _errors(csv_with(GOOD_ROW, "dc-ams1,dup,,,,,,,T4,1", "dc-ams1,dup,,,,,,,T4,2"))
    assert errors == ["row 3: node 'dup' in site 'dc-ams1' is already in row 2"]


def test_every_bad_row_is_reported_at_once(site):
    errors = _errors(csv_with("dc-x,a,,,,,,,T4,1", GOOD_ROW, "dc-ams1,b,,,,,,,Z9,1"))
    assert [e.split(":")[0] for e in errors] == ["row 1", "row 3"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("site,name,colour,gpu_model,gpu_count\n", "header: unknown column 'colour'"),
        ("site,name,gpu_model\n", "header: required column 'gpu_count' is missing"),
        (f'{HEADER}\ndc-ams1,"unterminated,,,,,,,T4,1\n', "malformed CSV"),
    ],
)
def test_malformed_csv(site, text, expected):
    assert any(expected in e for e in _errors(text)), _errors(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: [ {site: dc-ams1\n", "line 2, column 1: malformed YAML"),
        ("site: dc-ams1\nname: n1\n", "must be a list of nodes"),
        ("- just a string\n", "row 1: each node must be a mapping"),
        ("- {site: dc-ams1, name: n1, gpu_model: T4, gpu_count: 1, colour: red}\n", "row 1: unknown key 'colour'"),
        ("- {site: dc-ams1, name: n1, gpu_model: T4}\n", "row 1: gpu_count is required"),
        ("- {site: dc-ams1, name: n1, gpu_model: T4, gpu_count: 1, labels: [a, b]}\n", "row 1: labels must be"),
        ("- {site: dc-ams1, name: n1, gpu_model: T4, gpu_count: 1, labels: {a: [1]}}\n", "label 'a' must have"),
        ("- {site: dc-ams1, name: n1, gpu_model: T4, gpu_count: true}\n", "row 1: gpu_count True must be"),
    ],
)
def test_malformed_yaml(site, text, expected):
    errors = _errors(text, fmt="yaml")
    assert any(expected in e for e in errors), errors


def test_command_imports_csv_and_yaml_files(site, tmp_path, capsys):
    (tmp_path / "nodes.csv").write_text(GOOD_CSV)
    (tmp_path / "more.yml").write_text(GOOD_YAML)
    call_command("import_nodes", str(tmp_path / "nodes.csv"))
    assert "Imported 3 nodes from nodes.csv: 3 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    call_command("import_nodes", str(tmp_path / "more.yml"), "--dry-run")
    assert "Would import 2 nodes" in capsys.readouterr().out
    assert Node.objects.count() == 3
    call_command("import_nodes", str(tmp_path / "more.yml"))
    assert Node.objects.count() == 5


def test_command_reports_every_problem_and_imports_nothing(site, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(csv_with(GOOD_ROW, "dc-x,n1,,,,,,,T4,1", "dc-ams1,n2,,,,,,,T4,0"))
    with pytest.raises(CommandError) as info:
        call_command("import_nodes", str(path))
    message = str(info.value)
    assert "2 problem(s); nothing was imported" in message
    assert "row 2: site 'dc-x' does not exist" in message and "row 3: gpu_count" in message
    assert not Node.objects.exists()
    with pytest.raises(CommandError, match="Cannot tell the format"):
        call_command("import_nodes", str(tmp_path / "nodes.txt"))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_nodes", str(tmp_path / "missing.csv"))


def test_import_query_count_does_not_grow_with_rows(site, django_assert_max_num_queries):
    many = csv_with(*(f"dc-ams1,n{i:03d},,,,research,llm,rack=r{i},H100,8" for i in range(50)))
    with django_assert_max_num_queries(20):
        node_import(text=many, fmt="csv")
    assert GPU.objects.count() == 400


def test_the_examples_in_the_docs_import(site, settings):
    settings.FLEETDECK_SECRETS_DIR = "/etc/fleetdeck/agent-tokens"  # as docs/agent.md sets it up
    TeamFactory(slug="inference")
    docs = (ROOT / "docs" / "inventory.md").read_text()
    csv_example = re.search(r"```csv\n(.*?)```", docs, re.S).group(1)
    yaml_example = re.search(r"```yaml\n(.*?)```", docs, re.S).group(1)
    assert node_import(text=csv_example, fmt="csv").created == 2
    assert node_import(text=yaml_example, fmt="yaml").created == 1
