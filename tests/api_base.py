"""Generic REST API tests: a resource's test class declares its URL name, factory and payloads, and inherits
list, get, create, update, delete, 401 without credentials, 403 for a viewer or a read-only token writing,
400 with a field message for each bad payload, filter/ordering errors, and a query-count guard on lists."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from core.choices import Role


@pytest.mark.django_db
class APIResourceTests:
    """Subclass as ``TestXAPI(APIResourceTests)`` and set the class attributes below."""

    basename: ClassVar[str]  # router basename: "node" → node-list / node-detail
    model: ClassVar[type]
    # (payload, field that must be named in the 400 response)
    bad_payloads: ClassVar[list[tuple[dict[str, Any], str]]] = []
    # Fields whose values in a response must equal the create payload's.
    compare_fields: ClassVar[tuple[str, ...]] = ()

    # --- what each resource provides -------------------------------------------------------------------
    def make(self, **kwargs):
        """Create one instance through the factory."""
        raise NotImplementedError

    def create_payload(self) -> dict[str, Any]:
        """A valid body for POST (may create the objects it refers to)."""
        raise NotImplementedError

    def update_payload(self, instance) -> dict[str, Any]:
        """A valid body for PATCH of ``instance``."""
        raise NotImplementedError

    # --- helpers ---------------------------------------------------------------------------------------
    def list_url(self) -> str:
        return reverse(f"api:{self.basename}-list")

    def detail_url(self, pk: int) -> str:
        return reverse(f"api:{self.basename}-detail", kwargs={"pk": pk})

    # --- the tests -------------------------------------------------------------------------------------
    def test_list(self, admin_api):
        objs = [self.make() for _ in range(3)]
        response = admin_api.get(self.list_url())
        assert response.status_code == 200, response.content
        assert response.data["count"] == self.model.objects.count() >= 3
        listed = {row["id"] for row in response.data["results"]}
        assert {o.pk for o in objs} <= listed

    def test_list_query_count_does_not_grow_with_rows(self, admin_api):
        self.make()
        admin_api.get(self.list_url())  # the token's first use writes last_used; measure steady state
        with CaptureQueriesContext(connection) as few:
            assert admin_api.get(self.list_url()).status_code == 200
        for _ in range(6):
            self.make()
        with CaptureQueriesContext(connection) as many:
            assert admin_api.get(self.list_url()).status_code == 200
        assert len(many) == len(few), [q["sql"] for q in many.captured_queries]

    def test_get(self, admin_api):
        obj = self.make()
        response = admin_api.get(self.detail_url(obj.pk))
        assert response.status_code == 200, response.content
        assert response.data["id"] == obj.pk

    def test_get_missing_is_404(self, admin_api):
        assert admin_api.get(self.detail_url(987654321)).status_code == 404

    def test_create(self, admin_api):
        payload = self.create_payload()
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 201, response.content
        created = self.model.objects.get(pk=response.data["id"])
        for field in self.compare_fields:
            assert response.data[field] == payload[field], field
        assert created.pk == response.data["id"]

    def test_update(self, admin_api):
        obj = self.make()
        payload = self.update_payload(obj)
        response = admin_api.patch(self.detail_url(obj.pk), payload, format="json")
        assert response.status_code == 200, response.content
        for field, value in payload.items():
            assert response.data[field] == value, field

    def test_delete(self, admin_api):
        obj = self.make()
        response = admin_api.delete(self.detail_url(obj.pk))
        assert response.status_code == 204, response.content
        assert not self.model.objects.filter(pk=obj.pk).exists()

    def test_unauthenticated_is_401(self, db):
        obj = self.make()
        client = APIClient()
        assert client.get(self.list_url()).status_code == 401
        assert client.get(self.detail_url(obj.pk)).status_code == 401
        assert client.post(self.list_url(), {}, format="json").status_code == 401
        assert client.get(self.list_url(), HTTP_AUTHORIZATION="Bearer fdk_not-a-real-token").status_code == 401

    def test_viewer_reads_but_cannot_write(self, api_client):
        viewer = api_client(Role.VIEWER)
        obj = self.make()
        assert viewer.get(self.list_url()).status_code == 200
        assert viewer.post(self.list_url(), self.create_payload(), format="json").status_code == 403
        assert viewer.patch(self.detail_url(obj.pk), self.update_payload(obj), format="json").status_code == 403
        assert viewer.delete(self.detail_url(obj.pk)).status_code == 403
        assert self.model.objects.filter(pk=obj.pk).exists()

    def test_read_only_token_cannot_write(self, api_client):
        client = api_client(Role.ADMIN, read_only=True)
        obj = self.make()
        assert client.get(self.detail_url(obj.pk)).status_code == 200
        before = self.model.objects.count()
        response = client.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 403
        assert "read-only" in response.data["detail"]
        assert client.delete(self.detail_url(obj.pk)).status_code == 403
        assert self.model.objects.count() == before

    def test_bad_input_is_400_with_field_message(self, admin_api):
        assert self.bad_payloads, "declare bad_payloads for every resource"
        for bad, field in self.bad_payloads:
            payload = {**self.create_payload(), **bad}
            before = self.model.objects.count()
            response = admin_api.post(self.list_url(), payload, format="json")
            assert response.status_code == 400, (bad, response.content)
            assert field in response.data, (bad, response.data)
            assert self.model.objects.count() == before

    def test_malformed_json_is_400(self, admin_api):
        response = admin_api.generic("POST", self.list_url(), "{not json", content_type="application/json")
        assert response.status_code == 400

    def test_bad_ordering_and_page_are_4xx_not_500(self, admin_api):
        self.make()
        assert admin_api.get(self.list_url(), {"ordering": "no_such_field"}).status_code == 400
        assert admin_api.get(self.list_url(), {"page": "9999"}).status_code == 404
        assert admin_api.get(self.list_url(), {"page_size": "-3"}).status_code == 200
