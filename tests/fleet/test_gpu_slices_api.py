"""The GPU slice API (/api/v1/gpu-slices/), a GPU's slices in the GPU and node APIs and on the node page, and the
slice admin: every rule of GpuSlice.clean and fleet.slices answered with a 400 that names the field, nothing
saved; the node detail's query count does not grow with GPUs or slices."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.choices import Role
from fleet.models import GpuSlice
from tests.api_base import APIResourceTests
from tests.factories import GPUFactory, NodeFactory, ProjectFactory, TeamFactory

pytestmark = pytest.mark.django_db


def _slice(gpu=None, **kwargs) -> GpuSlice:
    fields = {"kind": "mig", "name": "3g.40gb#1", "units": 3, "of_units": 7, **kwargs}
    return GpuSlice.objects.create(gpu=gpu or GPUFactory(), **fields)


class TestGpuSliceAPI(APIResourceTests):
    basename = "gpuslice"
    model = GpuSlice
    compare_fields = ("gpu", "kind", "name", "units", "of_units", "team", "project")
    bad_payloads = [
        ({"units": 8}, "units"),  # more than the GPU's 7
        ({"units": 0}, "units"),
        ({"of_units": 65}, "of_units"),
        ({"of_units": 4}, "of_units"),  # MIG on an H100 is counted in 7
        ({"kind": "vgpu"}, "kind"),
        ({"name": "3g.40gb\n#1"}, "name"),  # a line break would break pages and CSVs
        ({"name": "x" * 65}, "name"),
        ({"name": ""}, "name"),
        ({"gpu": 987654321}, "gpu"),
        ({"gpu": "١"}, "gpu"),  # an Arabic-Indic digit is not an id
        ({"team": None}, "team"),  # the payload's project then has no team
    ]

    def make(self, **kwargs):
        return _slice(**kwargs)

    def create_payload(self):
        project = ProjectFactory()
        return {
            "gpu": GPUFactory().pk,
            "kind": "mig",
            "name": "3g.40gb#1",
            "units": 3,
            "of_units": 7,
            "team": project.team_id,
            "project": project.pk,
        }

    def update_payload(self, instance):
        return {"units": 2, "name": "2g.20gb#3"}

    def test_project_of_another_team_is_400(self, admin_api):
        payload = {**self.create_payload(), "team": TeamFactory().pk}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "another team" in str(response.data["project"])
        assert not GpuSlice.objects.exists()

    def test_over_subscribed_gpu_is_400(self, admin_api):
        """4 + 3 of 7 fit; another 1 would make 8 of 7."""
        gpu = GPUFactory()
        _slice(gpu, name="4g.40gb#0", units=4)
        _slice(gpu, name="3g.40gb#4", units=3)
        payload = {"gpu": gpu.pk, "kind": "mig", "name": "1g.10gb#9", "units": 1, "of_units": 7}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "8 of its 7" in str(response.data["units"])
        assert gpu.slices.count() == 2

    def test_growing_a_slice_past_the_gpu_is_400(self, admin_api):
        gpu = GPUFactory()
        _slice(gpu, name="4g.40gb#0", units=4)
        mine = _slice(gpu, name="2g.20gb#5", units=2)
        response = admin_api.patch(self.detail_url(mine.pk), {"units": 4}, format="json")
        assert response.status_code == 400 and "units" in response.data
        mine.refresh_from_db()
        assert mine.units == 2

    def test_mixed_kinds_on_one_gpu_are_400(self, admin_api):
        gpu = GPUFactory()
        _slice(gpu)
        payload = {"gpu": gpu.pk, "kind": "time-slice", "name": "replica-1", "units": 1, "of_units": 4}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "kind" in response.data

    def test_mig_on_a_gpu_without_mig_is_400_time_slicing_is_fine(self, admin_api):
        t4 = GPUFactory(model="Tesla T4", memory_mib=16384)
        payload = {"gpu": t4.pk, "kind": "mig", "name": "1g.5gb#1", "units": 1, "of_units": 7}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "no MIG" in str(response.data["kind"])
        payload = {**payload, "kind": "time-slice", "name": "replica-1", "of_units": 4}
        assert admin_api.post(self.list_url(), payload, format="json").status_code == 201

    def test_duplicate_name_on_a_gpu_is_400(self, admin_api):
        existing = _slice(units=1)
        payload = {"gpu": existing.gpu_id, "kind": "mig", "name": existing.name, "units": 1, "of_units": 7}
        assert admin_api.post(self.list_url(), payload, format="json").status_code == 400
        assert GpuSlice.objects.count() == 1

    def test_operator_writes(self, api_client):
        operator = api_client(Role.OPERATOR)
        response = operator.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 201, response.content

    def test_filters(self, admin_api):
        team = TeamFactory()
        held = _slice(team=team)
        idle = _slice(name="2g.20gb#2", units=2)

        def names(**query):
            return [row["id"] for row in admin_api.get(self.list_url(), query).data["results"]]

        assert names(team=team.pk) == [held.pk]
        assert names(team_slug=team.slug) == [held.pk]
        assert names(node=idle.gpu.node_id) == [idle.pk]
        assert names(gpu=held.gpu_id) == [held.pk]
        assert names(idle="true") == [idle.pk]
        assert admin_api.get(self.list_url(), {"node": "one"}).status_code == 400


def test_gpu_and_node_apis_list_slices_in_constant_queries(admin_api):
    """The node detail: node, its GPUs, their slices, whatever the counts (plus the token's queries)."""
    node = NodeFactory()
    for index in range(2):
        _slice(GPUFactory(node=node, index=index), units=3)
    url = reverse("api:node-detail", args=[node.pk])
    admin_api.get(url)
    with CaptureQueriesContext(connection) as few:
        response = admin_api.get(url)
    assert [len(gpu["slices"]) for gpu in response.data["gpus"]] == [1, 1]
    assert response.data["gpus"][0]["slices"][0]["name"] == "3g.40gb#1"
    for index in range(2, 6):
        gpu = GPUFactory(node=node, index=index)
        _slice(gpu, name="3g.40gb#1", units=3)
        _slice(gpu, name="4g.40gb#2", units=4)
    with CaptureQueriesContext(connection) as many:
        response = admin_api.get(url)
    assert len(response.data["gpus"]) == 6
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    gpus = admin_api.get(reverse("api:gpu-list"), {"node": node.pk}).data["results"]
    assert sum(len(g["slices"]) for g in gpus) == 10


def test_node_page_shows_slices_and_idle_in_constant_queries(client, make_user):
    client.force_login(make_user(Role.VIEWER))
    node = NodeFactory()
    team = TeamFactory(name="Vision")
    gpu = GPUFactory(node=node, index=0)
    _slice(gpu, team=team)
    _slice(gpu, name="2g.20gb#2", units=2)
    url = reverse("node-detail", args=[node.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        html = client.get(url).content.decode()
    assert "3g.40gb#1 (3/7) · Vision" in html and "2g.20gb#2 (2/7)" in html and "idle" in html
    for index in range(1, 5):
        _slice(GPUFactory(node=node, index=index), team=TeamFactory())
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


def test_admin_slice_form_refuses_what_the_api_refuses(client, make_user):
    client.force_login(make_user(Role.ADMIN))
    gpu = GPUFactory()
    _slice(gpu, units=4, name="4g.40gb#0")
    url = reverse("admin:fleet_gpuslice_add")
    base = {"gpu": gpu.pk, "kind": "mig", "name": "3g.40gb#4", "units": 3, "of_units": 7}
    assert client.get(url).status_code == 200
    for bad in ({"units": 4}, {"of_units": 4}, {"project": ProjectFactory().pk}):
        response = client.post(url, {**base, **bad})
        assert response.status_code == 200 and response.context["adminform"].form.errors, bad
    assert gpu.slices.count() == 1
    assert client.post(url, base).status_code == 302
    assert gpu.slices.count() == 2
    assert client.get(reverse("admin:fleet_gpu_change", args=[gpu.pk])).status_code == 200
