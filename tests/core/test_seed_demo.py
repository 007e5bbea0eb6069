"""``manage.py seed_demo``: a plausible fleet with real GPU types, deterministic, safe to re-run."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.test import RequestFactory

from fleet.catalog import GPU_SPECS
from fleet.models import GPU, Node, Provider

pytestmark = pytest.mark.django_db


def seed(*args):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_creates_a_fleet_of_real_gpu_types_in_every_kind_of_site():
    output = seed("--nodes", "120")
    assert "Seeded" in output
    assert Node.objects.count() >= 110
    assert set(Provider.objects.values_list("kind", flat=True)) == {"aws", "gcp", "onprem"}
    specs = {s.nvml_name: s for s in GPU_SPECS.values()}
    for gpu in GPU.objects.all()[:500]:
        spec = specs[gpu.model]
        assert (gpu.memory_mib, gpu.power_limit_w) == (spec.memory_mib, spec.power_limit_w)
    counts = dict(GPU.objects.values_list("model").annotate(n=Count("pk")))
    assert {"NVIDIA H100 80GB HBM3", "NVIDIA A10G", "Tesla T4", "NVIDIA L4"} <= set(counts)
    for node in Node.objects.select_related("site__provider", "project"):
        node.full_clean()  # every seeded row obeys the model's own rules
        assert node.project.team_id == node.team_id


def test_seed_is_deterministic():
    seed("--nodes", "40", "--seed", "3")
    first = sorted(GPU.objects.values_list("uuid", "node__name"))
    seed("--nodes", "40", "--seed", "3", "--reset")
    assert sorted(GPU.objects.values_list("uuid", "node__name")) == first


def test_seed_twice_refuses_or_skips():
    seed("--nodes", "20")
    with pytest.raises(CommandError, match="already seeded"):
        seed("--nodes", "20")
    assert "left as it is" in seed("--nodes", "20", "--if-empty")


def test_seed_creates_a_working_admin_login():
    output = seed("--nodes", "10", "--user", "demo", "--password", "fleetdeck-demo")
    assert "Login: demo" in output
    # As the login page calls it: with the request (django-axes counts failures per request's address).
    user = authenticate(RequestFactory().post("/login/"), username="demo", password="fleetdeck-demo")
    assert user is not None and user.is_staff and user.groups.filter(name="admin").exists()


@pytest.mark.parametrize(("args", "message"), [(["--nodes", "0"], "at least 1"), (["--user", "x"], "--password")])
def test_seed_rejects_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        seed(*args)
