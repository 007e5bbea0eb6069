"""The fleet REST API: every resource through the generic API tests, plus node filters."""

import pytest
from django.urls import reverse

from fleet.models import GPU, Node, Project, Provider, Site, Team
from tests.api_base import APIResourceTests
from tests.factories import (
    GPUFactory,
    NodeFactory,
    OnPremProviderFactory,
    OnPremSiteFactory,
    ProjectFactory,
    ProviderFactory,
    SiteFactory,
    TeamFactory,
)


class TestProviderAPI(APIResourceTests):
    basename = "provider"
    model = Provider
    compare_fields = ("name", "kind", "account_id", "credential_ref")
    bad_payloads = [
        ({"kind": "azure"}, "kind"),
        ({"account_id": "12345"}, "account_id"),
        ({"credential_ref": "AKIAIOSFODNN7EXAMPLE"}, "credential_ref"),
        ({"name": "Has Spaces"}, "name"),
        ({"name": ""}, "name"),
        ({"enabled": "perhaps"}, "enabled"),
    ]

    def make(self, **kwargs):
        return ProviderFactory(**kwargs)

    def create_payload(self):
        return {"name": "aws-research", "kind": "aws", "account_id": "210987654321", "credential_ref": "env:AWS_RO"}

    def update_payload(self, instance):
        return {"enabled": False, "credential_ref": "profile:other"}

    def test_duplicate_account_is_400(self, admin_api):
        ProviderFactory(account_id="210987654321")
        response = admin_api.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 400
        assert "already exists" in str(response.data)

    def test_onprem_with_credentials_is_400(self, admin_api):
        payload = {"name": "dc", "kind": "onprem", "credential_ref": "adc"}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400
        assert "credential_ref" in response.data

    def test_delete_provider_with_sites_is_409(self, admin_api):
        site = SiteFactory()
        response = admin_api.delete(self.detail_url(site.provider_id))
        assert response.status_code == 409
        assert site.name in response.data["protected"]


class TestSiteAPI(APIResourceTests):
    basename = "site"
    model = Site
    compare_fields = ("name", "region", "continent", "electricity_usd_per_kwh", "pue")
    bad_payloads = [
        ({"pue": None}, "pue"),
        ({"pue": "0.80"}, "pue"),
        ({"electricity_usd_per_kwh": "cheap"}, "electricity_usd_per_kwh"),
        ({"electricity_usd_per_kwh": None}, "electricity_usd_per_kwh"),
        ({"provider": 987654321}, "provider"),
        ({"continent": "atlantis"}, "continent"),
    ]

    def make(self, **kwargs):
        return SiteFactory(**kwargs)

    def create_payload(self):
        provider = OnPremProviderFactory()
        return {
            "provider": provider.pk,
            "name": "dc-fra1",
            "region": "frankfurt",
            "continent": "europe",
            "electricity_usd_per_kwh": "0.24000",
            "pue": "1.40",
        }

    def update_payload(self, instance):
        return {"zone": "us-east-1b"}

    def test_cloud_site_needs_region_and_no_energy_price(self, admin_api):
        provider = ProviderFactory()
        payload = {"provider": provider.pk, "name": "aws-x", "continent": "europe", "region": ""}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "region" in response.data
        payload.update(region="eu-west-1", pue="1.2")
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "pue" in response.data


class TestTeamAPI(APIResourceTests):
    basename = "team"
    model = Team
    compare_fields = ("name", "slug")
    bad_payloads = [({"slug": "not a slug"}, "slug"), ({"name": ""}, "name"), ({"name": "x" * 101}, "name")]

    def make(self, **kwargs):
        return TeamFactory(**kwargs)

    def create_payload(self):
        return {"name": "Research", "slug": "research"}

    def update_payload(self, instance):
        return {"name": "Research & Development"}

    def test_duplicate_slug_is_400(self, admin_api):
        TeamFactory(slug="research")
        response = admin_api.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 400 and "slug" in response.data


class TestProjectAPI(APIResourceTests):
    basename = "project"
    model = Project
    compare_fields = ("team", "name", "slug")
    bad_payloads = [({"team": None}, "team"), ({"team": "abc"}, "team"), ({"slug": ""}, "slug")]

    def make(self, **kwargs):
        return ProjectFactory(**kwargs)

    def create_payload(self):
        return {"team": TeamFactory().pk, "name": "LLM pretraining", "slug": "llm-pretrain"}

    def update_payload(self, instance):
        return {"name": "Renamed"}

    def test_duplicate_slug_in_team_is_400(self, admin_api):
        project = ProjectFactory()
        payload = {"team": project.team_id, "name": "again", "slug": project.slug}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400, response.data
        assert "non_field_errors" in response.data


class TestNodeAPI(APIResourceTests):
    basename = "node"
    model = Node
    compare_fields = ("site", "name", "instance_type", "lifecycle", "labels", "telemetry_url", "token_ref")
    bad_payloads = [
        ({"lifecycle": "owned"}, "lifecycle"),
        ({"state": "melted"}, "state"),
        ({"labels": ["a", "b"]}, "labels"),
        ({"labels": {"team": 7}}, "labels"),
        ({"labels": {"team": "a\x00b"}}, "labels"),
        ({"name": "nul\x00name"}, "name"),
        ({"token_ref": "s3cr3t-bearer-token-value"}, "token_ref"),
        ({"token_ref": "env:AWS_SECRET_ACCESS_KEY"}, "token_ref"),
        ({"token_ref": "file:/etc/passwd"}, "token_ref"),
        ({"telemetry_url": "ftp://10.0.0.5/metrics"}, "telemetry_url"),
        ({"telemetry_url": "not a url"}, "telemetry_url"),
        ({"site": None}, "site"),
        ({"launched_at": "yesterday"}, "launched_at"),
        ({"name": ""}, "name"),
    ]

    def make(self, **kwargs):
        node = NodeFactory(**kwargs)
        GPUFactory(node=node, index=0)
        return node

    def create_payload(self):
        return {
            "site": SiteFactory().pk,
            "name": "gpu-node-1",
            "instance_type": "p5.48xlarge",
            "lifecycle": "spot",
            "labels": {"env": "prod"},
            "telemetry_url": "http://10.0.0.5:9400/metrics",
            "token_ref": "env:FLEETDECK_NODE_TOKEN",
        }

    def update_payload(self, instance):
        return {"state": "stopped", "labels": {"env": "staging"}}

    def test_list_reports_gpu_count_and_provider(self, admin_api):
        node = self.make()
        GPUFactory(node=node, index=1)
        row = admin_api.get(self.detail_url(node.pk)).data
        assert row["gpu_count"] == 2
        assert row["provider_kind"] == "aws"

    def test_project_of_another_team_is_400(self, admin_api):
        payload = {**self.create_payload(), "team": TeamFactory().pk, "project": ProjectFactory().pk}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "project" in response.data

    def test_onprem_node_must_be_owned(self, admin_api):
        payload = {**self.create_payload(), "site": OnPremSiteFactory().pk, "lifecycle": "on-demand"}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "lifecycle" in response.data
        payload["lifecycle"] = "owned"
        assert admin_api.post(self.list_url(), payload, format="json").status_code == 201

    def test_duplicate_name_in_site_is_400(self, admin_api):
        node = self.make()
        payload = {**self.create_payload(), "site": node.site_id, "name": node.name}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400, response.data

    def test_duplicate_external_id_in_site_is_rejected(self, admin_api):
        node = self.make()
        payload = {**self.create_payload(), "site": node.site_id, "external_id": node.external_id}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code in (400, 409), response.data
        assert Node.objects.filter(external_id=node.external_id).count() == 1

    def test_last_seen_is_read_only(self, admin_api):
        node = self.make()
        response = admin_api.patch(self.detail_url(node.pk), {"last_seen": "2020-01-01T00:00:00Z"}, format="json")
        assert response.status_code == 200
        node.refresh_from_db()
        assert node.last_seen is None

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({"provider": "onprem"}, {"dc-node"}),
            ({"state": "stopped"}, {"stopped-node"}),
            ({"gpu_model": "A10G"}, {"a10g-node"}),
            ({"q": "stopped"}, {"stopped-node"}),
            ({"team": "vision"}, {"dc-node"}),
            ({"site": "dc-test"}, {"dc-node"}),
            ({"provider": ["onprem", "aws"], "state": "running"}, {"dc-node", "a10g-node"}),
        ],
    )
    def test_filters(self, admin_api, query, expected):
        team = TeamFactory(slug="vision")
        NodeFactory(
            name="dc-node", site=OnPremSiteFactory(name="dc-test"), lifecycle="owned", external_id="", team=team
        )
        NodeFactory(name="stopped-node", state="stopped")
        a10g = NodeFactory(name="a10g-node", instance_type="g5.xlarge")
        GPUFactory(node=a10g, index=0, model="NVIDIA A10G")
        GPUFactory(node=a10g, index=1, model="NVIDIA A10G")
        response = admin_api.get(self.list_url(), query)
        assert response.status_code == 200, response.data
        assert {row["name"] for row in response.data["results"]} == expected

    def test_ordering_by_gpu_count_is_stable_across_pages(self, admin_api):
        nodes = [NodeFactory() for _ in range(7)]
        GPUFactory(node=nodes[3], index=0)
        seen = []
        for page in (1, 2, 3, 4):
            data = admin_api.get(self.list_url(), {"ordering": "-gpu_count", "page_size": 2, "page": page}).data
            seen += [row["name"] for row in data["results"]]
        assert seen[0] == nodes[3].name
        assert sorted(seen) == sorted(n.name for n in nodes)


class TestGPUAPI(APIResourceTests):
    basename = "gpu"
    model = GPU
    compare_fields = ("node", "index", "uuid", "model", "memory_mib", "power_limit_w")
    bad_payloads = [
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"uuid": ""}, "uuid"),
        ({"memory_mib": 0}, "memory_mib"),
        ({"memory_mib": -1}, "memory_mib"),
        ({"index": "first"}, "index"),
        ({"node": 987654321}, "node"),
        ({"power_limit_w": "lots"}, "power_limit_w"),
    ]

    def make(self, **kwargs):
        return GPUFactory(**kwargs)

    def create_payload(self):
        return {
            "node": NodeFactory().pk,
            "index": 0,
            "uuid": "GPU-2f9b6a1e-5d3c-4b7a-9e8f-0123456789ab",
            "model": "NVIDIA H100 80GB HBM3",
            "memory_mib": 81920,
            "power_limit_w": 700,
        }

    def update_payload(self, instance):
        return {"power_limit_w": 500}

    def test_duplicate_uuid_is_400(self, admin_api):
        gpu = GPUFactory()
        payload = {**self.create_payload(), "uuid": gpu.uuid}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "uuid" in response.data

    def test_filter_by_node(self, admin_api):
        gpu = GPUFactory()
        GPUFactory()
        response = admin_api.get(self.list_url(), {"node": gpu.node_id})
        assert [row["uuid"] for row in response.data["results"]] == [gpu.uuid]


@pytest.mark.django_db
def test_api_root_lists_resources(admin_api):
    response = admin_api.get(reverse("api:api-root"))
    assert response.status_code == 200
    assert {"providers", "sites", "teams", "projects", "nodes", "gpus"} <= set(response.data)
