"""The Compute Engine emulator answers in the real API's shapes: the real client parses it, and its JSON has
the keys of the captured responses in ../shared/fixtures/gcp."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from devtools.emulators.gce import DEMO_PROJECT, GceEmulator
from tests.conftest import ROOT


@pytest.fixture
def emulator():
    with GceEmulator() as emu:
        yield emu


def clients(emu):
    kwargs = {"transport": "rest", "credentials": AnonymousCredentials(), "client_options": {"api_endpoint": emu.url}}
    return compute_v1.InstancesClient(**kwargs), compute_v1.MachineTypesClient(**kwargs)


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local http:// URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_aggregated_list_has_the_shape_of_the_real_api(emulator, shared_fixtures):
    emulator.seed_demo()
    real = json.loads((shared_fixtures / "gcp" / "libcloud_aggregated_instances.json").read_text())
    status, ours = get_json(f"{emulator.url}/compute/v1/projects/{DEMO_PROJECT}/aggregated/instances")
    assert status == 200
    assert set(real) <= set(ours)
    real_instance = real["items"]["zones/europe-west1-a"]["instances"][0]
    our_instance = ours["items"]["zones/us-central1-a"]["instances"][0]
    shared_keys = {"id", "kind", "name", "machineType", "status", "zone", "selfLink", "scheduling", "creationTimestamp"}
    assert shared_keys <= set(real_instance) & set(our_instance)
    empty = ours["items"]["zones/asia-southeast1-b"]
    assert empty["warning"]["code"] == real["items"]["zones/europe-west1-b"]["warning"]["code"] == "NO_RESULTS_ON_PAGE"


def test_machine_type_has_the_shape_of_the_real_api(emulator, shared_fixtures):
    path = shared_fixtures / "gcp" / "cluster-toolkit_machineTypes_get_a2-highgpu-1g_and_t2d-standard-8.json"
    real = next(m for m in json.loads(path.read_text()) if m["name"] == "a2-highgpu-1g")
    _, machine_types = clients(emulator)
    ours = machine_types.get(project="p-123456", zone="us-central1-a", machine_type="a2-highgpu-1g")
    assert (ours.guest_cpus, ours.memory_mb) == (real["guestCpus"], real["memoryMb"])
    assert [(a.guest_accelerator_type, a.guest_accelerator_count) for a in ours.accelerators] == [
        (a["guestAcceleratorType"], a["guestAcceleratorCount"]) for a in real["accelerators"]
    ]
    assert not machine_types.get(project="p-123456", zone="us-central1-a", machine_type="n1-standard-8").accelerators


def test_the_real_client_pages_through_every_instance(emulator):
    for n in range(7):
        emulator.add_instance("p-123456", f"us-central1-{'abc'[n % 3]}", f"vm-{n}", machine_type="g2-standard-4")
    instances, _ = clients(emulator)
    request = compute_v1.AggregatedListInstancesRequest(project="p-123456", max_results=3)
    names = sorted(i.name for _, scoped in instances.aggregated_list(request=request) for i in scoped.instances)
    assert names == [f"vm-{n}" for n in range(7)]
    assert len([r for r in emulator.requests if "aggregated" in r]) == 3


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (403, exceptions.Forbidden),
        (429, exceptions.TooManyRequests),
        (500, exceptions.InternalServerError),
        (503, exceptions.ServiceUnavailable),
    ],
)
def test_injected_failures_reach_the_client_as_google_errors(emulator, status, exception):
    emulator.fail("p-123456", status)
    instances, machine_types = clients(emulator)
    with pytest.raises(exception):
        list(instances.aggregated_list(project="p-123456", retry=None))
    with pytest.raises(exception):
        machine_types.get(project="p-123456", zone="us-central1-a", machine_type="a2-highgpu-1g", retry=None)
    list(instances.aggregated_list(project="other-project", retry=None))  # other projects are unaffected
    code, body = get_json(f"{emulator.url}/compute/v1/projects/p-123456/aggregated/instances")
    assert code == status and body["error"]["code"] == status and body["error"]["errors"][0]["reason"]
    emulator.clear_failures()
    assert list(instances.aggregated_list(project="p-123456", retry=None)) is not None


def test_bad_requests_are_google_4xx(emulator):
    instances, machine_types = clients(emulator)
    with pytest.raises(exceptions.NotFound):
        machine_types.get(project="p-123456", zone="us-central1-a", machine_type="no-such-type", retry=None)
    code, body = get_json(f"{emulator.url}/compute/v1/projects/p-123456/aggregated/instances?pageToken=%%%")
    assert code == 400 and "pageToken" in body["error"]["message"]
    assert get_json(f"{emulator.url}/compute/v1/nothing-here")[0] == 404


def test_failures_can_be_limited_and_delayed(emulator):
    emulator.fail("p-123456", 429, times=2, after=1)
    url = f"{emulator.url}/compute/v1/projects/p-123456/aggregated/instances"
    assert [get_json(url)[0] for _ in range(4)] == [200, 429, 429, 200]


def test_command_line_entry_point_serves_the_demo_fleet():
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.emulators.gce", "--port", "0", "--seed-demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split("GCP_COMPUTE_ENDPOINT=")[1].rstrip(")\n")
        status, body = get_json(f"{url}/compute/v1/projects/{DEMO_PROJECT}/aggregated/instances")
        assert status == 200
        names = {i["name"] for scoped in body["items"].values() for i in scoped.get("instances", [])}
        assert {"a100-train-0", "h100-train-0", "t4-batch-0", "web-frontend"} <= names
    finally:
        proc.terminate()
        proc.wait(timeout=10)
