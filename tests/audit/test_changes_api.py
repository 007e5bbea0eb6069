"""GET /api/v1/changes/: operators and admins read the audit trail, filtered and paginated like every list."""

from __future__ import annotations

from rest_framework.test import APIClient

from core.choices import Role
from tests.audit.conftest import HOSTILE
from tests.factories import NodeFactory


def test_lists_changes_with_their_diff(api_client):
    client = api_client(Role.OPERATOR)
    node = NodeFactory(name="gpu-api1", instance_type="p5.48xlarge")
    response = client.patch(f"/api/v1/nodes/{node.pk}/", {"instance_type": "g6.xlarge"}, format="json")
    assert response.status_code == 200
    body = client.get("/api/v1/changes/", {"object_type": "fleet.node", "object_id": node.pk}).json()
    assert body["count"] == 2
    update, insert = body["results"]
    assert update["event"] == "update" and insert["event"] == "insert"
    assert update["diff"] == [{"field": "instance_type", "before": "p5.48xlarge", "after": "g6.xlarge"}]
    assert (update["user"], update["username"], update["interface"]) == (
        client.user.pk,
        client.user.username,
        "api",
    )
    assert update["context"]["method"] == "PATCH"
    assert update["object_type"] == "fleet.node" and update["object_id"] == str(node.pk)
    assert update["object_name"] == "gpu-api1"
    assert update["id"].startswith("audit.nodeevent:")
    assert {"field": "name", "before": None, "after": "gpu-api1"} in insert["diff"]
    assert (insert["user"], insert["interface"]) == (None, "command")
    mine = client.get("/api/v1/changes/", {"user": client.user.pk}).json()
    assert [r["id"] for r in mine["results"]] == [update["id"]]
    assert client.get("/api/v1/changes/", {"interface": "api", "event": "update"}).json()["count"] == 1


def test_filters_and_pages(api_client):
    client = api_client(Role.ADMIN)
    for i in range(3):
        NodeFactory(name=f"gpu-p{i}")
    body = client.get("/api/v1/changes/", {"object_type": "fleet.node", "page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert [r["object_name"] for r in body["results"]] == ["gpu-p2", "gpu-p1"]
    assert client.get("/api/v1/changes/", {"object_type": "fleet.node", "interface": "api"}).json()["count"] == 0
    by_user = client.get("/api/v1/changes/", {"user": client.user.pk}).json()
    assert by_user["count"] == 0  # the admin changed nothing through a request


def test_hostile_values_come_back_as_data(api_client):
    client = api_client(Role.OPERATOR)
    NodeFactory(name="gpu-h", instance_type=HOSTILE[:64])
    (row,) = client.get("/api/v1/changes/", {"object_type": "fleet.node"}).json()["results"]
    assert {"field": "instance_type", "before": None, "after": HOSTILE[:64]} in row["diff"]


def test_a_filter_not_understood_is_a_400_naming_it(api_client):
    client = api_client(Role.OPERATOR)
    response = client.get("/api/v1/changes/", {"object_type": "fleet.nothing", "since": "soon"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "object_type" in text and "since" in text


def test_viewers_and_strangers_are_refused(api_client):
    assert APIClient().get("/api/v1/changes/").status_code == 401
    assert api_client(Role.VIEWER).get("/api/v1/changes/").status_code == 403
    assert api_client(Role.OPERATOR, read_only=True).get("/api/v1/changes/").status_code == 200


def test_ids_out_of_range_are_a_400_or_nothing_not_an_error(api_client):
    client = api_client(Role.OPERATOR)
    assert client.get("/api/v1/changes/", {"object_id": 2**64}).status_code == 400
    assert client.get("/api/v1/changes/", {"object_id": 0}).status_code == 400
    assert client.get("/api/v1/changes/", {"user": 2**64}).status_code == 400
