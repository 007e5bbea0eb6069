"""Inventory in the REST API: POST /providers/{id}/sync/ (202, a sync run to poll), /sync-runs/, /inventory-scopes/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.choices import Role, RunStatus
from fleet.choices import ProviderKind
from fleet.inventory import tasks
from fleet.models import InventoryScope, Node, SyncRun
from tests.factories import OnPremProviderFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def sync_url(provider) -> str:
    return reverse("api:provider-sync", kwargs={"pk": provider.pk})


@pytest.fixture
def gcp_provider(gce):
    gce.add_instance("ml-research-1", "us-central1-a", "a100-0", machine_type="a2-highgpu-1g")
    return ProviderFactory(name="gcp-ml", kind=ProviderKind.GCP, account_id="ml-research-1", credential_ref="adc")


@pytest.fixture
def queued(monkeypatch):
    """The sync runs the endpoint enqueued (run ids sent to the worker), in order."""
    sent = []
    monkeypatch.setattr(tasks.inventory_sync_run, "delay", sent.append)
    return sent


def post_sync(client, provider, capture):
    """POST sync-now and run the on-commit callbacks (the enqueue) as a commit would."""
    with capture(execute=True):
        return client.post(sync_url(provider))


def test_operator_queues_a_sync_and_polls_it_to_the_report(
    api_client, gcp_provider, queued, django_capture_on_commit_callbacks
):
    operator = api_client(Role.OPERATOR)
    response = post_sync(operator, gcp_provider, django_capture_on_commit_callbacks)

    assert response.status_code == 202, response.content
    run = SyncRun.objects.get()
    assert queued == [run.pk]  # enqueued once the request's transaction committed
    assert (response.data["id"], response.data["status"], response.data["finished"]) == (run.pk, "queued", False)
    assert response.data["provider_name"] == "gcp-ml" and response.data["force"] is True
    assert response.data["report"] is None
    assert response["Location"] == response.data["url"]
    assert response.data["url"].endswith(reverse("api:syncrun-detail", kwargs={"pk": run.pk}))
    assert not Node.objects.exists()  # nothing synced inside the request

    tasks.inventory_sync_run(run.pk)  # what the worker does with the message

    polled = api_client(Role.VIEWER).get(response["Location"])
    assert polled.status_code == 200
    assert (polled.data["status"], polled.data["finished"], polled.data["error"]) == ("done", True, "")
    assert polled.data["started_at"] is not None and polled.data["finished_at"] is not None
    report = polled.data["report"]
    assert report["provider"] == "gcp-ml" and report["ok"] is True
    [scope] = report["scopes"]
    assert (scope["scope"], scope["ok"], scope["nodes_seen"], scope["created"], scope["error"]) == (
        "ml-research-1",
        True,
        1,
        1,
        "",
    )
    assert Node.objects.get().name == "a100-0"


def test_sync_now_ignores_backoff_and_reports_errors(
    api_client, gcp_provider, gce, queued, django_capture_on_commit_callbacks
):
    InventoryScope.objects.create(
        provider=gcp_provider,
        scope="ml-research-1",
        consecutive_failures=2,
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )
    gce.fail("ml-research-1", 403)
    admin = api_client(Role.ADMIN)
    response = post_sync(admin, gcp_provider, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    tasks.inventory_sync_run(*queued)
    polled = admin.get(response["Location"])
    assert polled.data["status"] == "done"  # the run finished; the scope's cloud error is in its report
    [scope] = polled.data["report"]["scopes"]
    assert scope["ok"] is False and scope["skipped"] is False and "Forbidden" in scope["error"]
    assert scope["next_attempt_at"] is not None
    assert polled.data["report"]["ok"] is False
    assert InventoryScope.objects.get().consecutive_failures == 3


def test_viewer_and_read_only_token_cannot_sync(api_client, gcp_provider, gce, queued):
    assert api_client(Role.VIEWER).post(sync_url(gcp_provider)).status_code == 403
    response = api_client(Role.OPERATOR, read_only=True).post(sync_url(gcp_provider))
    assert response.status_code == 403 and "read-only" in response.data["detail"]
    assert APIClient().post(sync_url(gcp_provider)).status_code == 401
    assert not gce.requests and not Node.objects.exists()
    assert not SyncRun.objects.exists() and queued == []


def test_sync_refuses_onprem_disabled_and_missing_providers(admin_api, queued):
    response = admin_api.post(sync_url(OnPremProviderFactory()))
    assert response.status_code == 400 and "kind" in response.data
    response = admin_api.post(sync_url(ProviderFactory(enabled=False)))
    assert response.status_code == 400 and "enabled" in response.data
    assert admin_api.post(reverse("api:provider-sync", kwargs={"pk": 987654321})).status_code == 404
    assert not SyncRun.objects.exists() and queued == []


def test_sync_runs_list_newest_first_filter_and_are_read_only(api_client, admin_api):
    aws, gcp = ProviderFactory(name="aws-prod"), ProviderFactory(name="gcp-ml", kind=ProviderKind.GCP)
    old = SyncRun.objects.create(provider=aws, status=RunStatus.FAILED, error="The provider was disabled")
    new = SyncRun.objects.create(provider=gcp)
    viewer = api_client(Role.VIEWER)
    runs_url = reverse("api:syncrun-list")
    response = viewer.get(runs_url)
    assert response.status_code == 200
    assert [r["id"] for r in response.data["results"]] == [new.pk, old.pk]
    assert [r["id"] for r in viewer.get(runs_url, {"provider": aws.pk}).data["results"]] == [old.pk]
    assert [r["id"] for r in viewer.get(runs_url, {"status": "queued"}).data["results"]] == [new.pk]
    assert viewer.get(runs_url, {"status": "nonsense"}).status_code == 400
    detail = reverse("api:syncrun-detail", kwargs={"pk": old.pk})
    assert viewer.get(detail).data["error"] == "The provider was disabled"
    assert APIClient().get(detail).status_code == 401
    assert admin_api.post(runs_url, {"provider": aws.pk}).status_code == 405
    assert admin_api.patch(detail, {"status": "done"}).status_code == 405
    assert admin_api.delete(detail).status_code == 405


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
    assert set(sync["responses"]) == {"202"} and "SyncRun" in str(sync["responses"]["202"])
    assert "get" in schema["paths"]["/api/v1/sync-runs/{id}/"]
    run = schema["components"]["schemas"]["SyncRun"]["properties"]
    assert {"url", "status", "finished", "report", "error"} <= set(run)


def test_sync_runs_show_read_only_in_the_admin(admin_client):
    run = SyncRun.objects.create(provider=ProviderFactory(name="aws-prod"), status=RunStatus.FAILED, error="x")
    changelist = admin_client.get(reverse("admin:fleet_syncrun_changelist"))
    assert changelist.status_code == 200 and "aws-prod" in changelist.content.decode()
    assert admin_client.get(reverse("admin:fleet_syncrun_change", args=[run.pk])).status_code == 200
    assert admin_client.get(reverse("admin:fleet_syncrun_add")).status_code == 403


def test_posting_sync_again_while_one_is_queued_answers_with_that_run(
    api_client, gcp_provider, queued, django_capture_on_commit_callbacks
):
    """A client posting in a loop never piles up overlapping syncs of one provider."""
    operator = api_client(Role.OPERATOR)
    first = post_sync(operator, gcp_provider, django_capture_on_commit_callbacks)
    again = post_sync(operator, gcp_provider, django_capture_on_commit_callbacks)
    assert again.status_code == 202 and again.data["id"] == first.data["id"]
    assert SyncRun.objects.count() == 1 and queued == [first.data["id"]]
    tasks.inventory_sync_run(first.data["id"])
    after = post_sync(operator, gcp_provider, django_capture_on_commit_callbacks)  # the first one has finished
    assert after.data["id"] != first.data["id"] and queued == [first.data["id"], after.data["id"]]


def test_a_run_delivered_twice_syncs_once(gcp_provider, gce):
    run = SyncRun.objects.create(provider=gcp_provider)
    assert tasks.inventory_sync_run(run.pk) is None and SyncRun.objects.get(pk=run.pk).status == "done"
    calls = len(gce.requests)
    tasks.inventory_sync_run(run.pk)  # the broker delivers the message again
    assert len(gce.requests) == calls
