"""Inventory in the REST API: POST /providers/{id}/sync/ and the read-only /inventory-scopes/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role
from fleet.choices import ProviderKind
from fleet.models import InventoryScope, Node
from tests.factories import OnPremProviderFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def sync_url(provider) -> str:
    return reverse("api:provider-sync", kwargs={"pk": provider.pk})


@pytest.fixture
def gcp_provider(gce):
    gce.add_instance("ml-research-1", "us-central1-a", "a100-0", machine_type="a2-highgpu-1g")
    return ProviderFactory(name="gcp-ml", kind=ProviderKind.GCP, account_id="ml-research-1", credential_ref="adc")


def test_operator_syncs_now_and_gets_the_report(api_client, gcp_provider):
    response = api_client(Role.OPERATOR).post(sync_url(gcp_provider))

    assert response.status_code == 200, response.content
    assert response.data["provider"] == "gcp-ml" and response.data["ok"] is True
    [scope] = response.data["scopes"]
    assert (scope["scope"], scope["ok"], scope["nodes_seen"], scope["created"], scope["error"]) == (
        "ml-research-1",
        True,
        1,
        1,
        "",
    )
    assert Node.objects.get().name == "a100-0"


def test_sync_now_ignores_backoff_and_reports_errors(api_client, gcp_provider, gce):
    InventoryScope.objects.create(
        provider=gcp_provider,
        scope="ml-research-1",
        consecutive_failures=2,
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )
    gce.fail("ml-research-1", 403)
    response = api_client(Role.ADMIN).post(sync_url(gcp_provider))
    assert response.status_code == 200
    [scope] = response.data["scopes"]
    assert scope["ok"] is False and scope["skipped"] is False and "Forbidden" in scope["error"]
    assert scope["next_attempt_at"] is not None
    assert InventoryScope.objects.get().consecutive_failures == 3


def test_viewer_and_read_only_token_cannot_sync(api_client, gcp_provider, gce):
    assert api_client(Role.VIEWER).post(sync_url(gcp_provider)).status_code == 403
    response = api_client(Role.OPERATOR, read_only=True).post(sync_url(gcp_provider))
    assert response.status_code == 403 and "read-only" in response.data["detail"]
    assert APIClient().post(sync_url(gcp_provider)).status_code == 401
    assert not gce.requests and not Node.objects.exists()


def test_sync_refuses_onprem_disabled_and_missing_providers(admin_api):
    response = admin_api.post(sync_url(OnPremProviderFactory()))
    assert response.status_code == 400 and "kind" in response.data
    response = admin_api.post(sync_url(ProviderFactory(enabled=False)))
    assert response.status_code == 400 and "enabled" in response.data
    assert admin_api.post(reverse("api:provider-sync", kwargs={"pk": 987654321})).status_code == 404


def scopes_url() -> str:
    return reverse("api:inventoryscope-list")


@pytest.fixture
def scopes(db):
    aws = ProviderFactory(name="aws-prod")
    gcp = ProviderFactory(name="gcp-ml", kind=ProviderKind.GCP, account_id="ml-research-1", credential_ref="adc")
    now = timezone.now()
    return [
        InventoryScope.objects.create(provider=aws, scope="us-west-2", last_success_at=now, nodes_seen=4),
        InventoryScope.objects.create(
            provider=aws, scope="us-east-1", consecutive_failures=2, last_error="UnauthorizedOperation: no"
        ),
        InventoryScope.objects.create(provider=gcp, scope="ml-research-1", last_success_at=now, nodes_seen=9),
    ]


def test_scopes_list_detail_filter_and_order(api_client, scopes):
    viewer = api_client(Role.VIEWER)
    response = viewer.get(scopes_url())
    assert response.status_code == 200
    assert [(r["provider_name"], r["scope"]) for r in response.data["results"]] == [
        ("aws-prod", "us-east-1"),
        ("aws-prod", "us-west-2"),
        ("gcp-ml", "ml-research-1"),
    ]
    first = response.data["results"][0]
    assert (first["ok"], first["consecutive_failures"], first["last_error"]) == (False, 2, "UnauthorizedOperation: no")

    detail = viewer.get(reverse("api:inventoryscope-detail", kwargs={"pk": scopes[2].pk}))
    assert detail.status_code == 200 and detail.data["ok"] is True and detail.data["nodes_seen"] == 9

    by_provider = viewer.get(scopes_url(), {"provider": scopes[2].provider_id})
    assert [r["scope"] for r in by_provider.data["results"]] == ["ml-research-1"]
    failing = viewer.get(scopes_url(), {"failing": "true"})
    assert [r["scope"] for r in failing.data["results"]] == ["us-east-1"]
    ordered = viewer.get(scopes_url(), {"ordering": "-consecutive_failures"})
    assert ordered.data["results"][0]["scope"] == "us-east-1"
    assert viewer.get(scopes_url(), {"ordering": "no_such_field"}).status_code == 400
    assert viewer.get(scopes_url(), {"provider_kind": "gcp"}).data["count"] == 1


def test_scopes_are_read_only_and_need_auth(api_client, admin_api, scopes):
    detail = reverse("api:inventoryscope-detail", kwargs={"pk": scopes[0].pk})
    assert APIClient().get(scopes_url()).status_code == 401
    assert admin_api.post(scopes_url(), {"provider": scopes[0].provider_id, "scope": "x"}).status_code == 405
    assert admin_api.patch(detail, {"scope": "x"}).status_code == 405
    assert admin_api.delete(detail).status_code == 405
    assert InventoryScope.objects.count() == 3


def test_scopes_list_query_count_does_not_grow(admin_api, scopes):
    admin_api.get(scopes_url())
    with CaptureQueriesContext(connection) as few:
        assert admin_api.get(scopes_url()).status_code == 200
    for n in range(6):
        InventoryScope.objects.create(provider=ProviderFactory(), scope=f"eu-west-{n}")
    with CaptureQueriesContext(connection) as many:
        assert admin_api.get(scopes_url()).status_code == 200
    assert len(many) == len(few)


def test_schema_documents_the_new_endpoints(admin_api):
    schema = admin_api.get(reverse("api-schema"), {"format": "json"}).json()
    assert "/api/v1/inventory-scopes/" in schema["paths"]
    sync = schema["paths"]["/api/v1/providers/{id}/sync/"]["post"]
    assert "SyncReport" in str(sync["responses"]["200"])
