"""Registering a node through the API without a lifecycle (fleet/api/serializers.py): an on-prem node is owned,
a cloud node on-demand; a lifecycle the site cannot have is still a 400 (Node.clean), and an update without one
keeps the node's."""

import pytest
from django.urls import reverse

from fleet.choices import NodeLifecycle
from fleet.models import Node
from tests.factories import NodeFactory, OnPremSiteFactory, SiteFactory

pytestmark = pytest.mark.django_db
NODES = reverse("api:node-list")


def register(admin_api, **payload):
    return admin_api.post(NODES, {"name": "gpu-node-7", **payload}, format="json")


def test_onprem_node_without_lifecycle_is_owned(admin_api):
    response = register(admin_api, site=OnPremSiteFactory().pk)
    assert response.status_code == 201, response.data
    assert response.data["lifecycle"] == "owned"
    assert Node.objects.get(pk=response.data["id"]).lifecycle == NodeLifecycle.OWNED


def test_cloud_node_without_lifecycle_is_on_demand(admin_api):
    response = register(admin_api, site=SiteFactory().pk, instance_type="p5.48xlarge")
    assert response.status_code == 201, response.data
    assert Node.objects.get(pk=response.data["id"]).lifecycle == NodeLifecycle.ON_DEMAND == "on-demand"


def test_explicit_lifecycle_is_kept(admin_api):
    response = register(admin_api, site=SiteFactory().pk, lifecycle="spot")
    assert response.status_code == 201, response.data
    assert response.data["lifecycle"] == "spot"


@pytest.mark.parametrize(
    ("site_factory", "lifecycle", "words"),
    [
        (OnPremSiteFactory, "spot", "On-prem nodes are owned."),
        (OnPremSiteFactory, "on-demand", "On-prem nodes are owned."),
        (SiteFactory, "owned", "Cloud nodes are on-demand, spot or reserved."),
    ],
)
def test_a_lifecycle_the_site_cannot_have_is_400(admin_api, site_factory, lifecycle, words):
    response = register(admin_api, site=site_factory().pk, lifecycle=lifecycle)
    assert response.status_code == 400
    assert [str(e) for e in response.data["lifecycle"]] == [words]
    assert not Node.objects.exists()


def test_unknown_lifecycle_is_400(admin_api):
    response = register(admin_api, site=OnPremSiteFactory().pk, lifecycle="leased")
    assert response.status_code == 400 and "lifecycle" in response.data


def test_update_without_lifecycle_keeps_it(admin_api):
    node = NodeFactory(lifecycle=NodeLifecycle.SPOT)
    url = reverse("api:node-detail", kwargs={"pk": node.pk})
    response = admin_api.put(url, {"site": node.site_id, "name": node.name}, format="json")
    assert response.status_code == 200, response.data
    node.refresh_from_db()
    assert node.lifecycle == NodeLifecycle.SPOT


def test_moving_a_cloud_node_on_prem_without_lifecycle_is_400(admin_api):
    """No default on update: a spot node moved to an on-prem site must be told it is owned now."""
    node = NodeFactory(lifecycle=NodeLifecycle.SPOT)
    url = reverse("api:node-detail", kwargs={"pk": node.pk})
    response = admin_api.patch(url, {"site": OnPremSiteFactory().pk}, format="json")
    assert response.status_code == 400 and "lifecycle" in response.data
