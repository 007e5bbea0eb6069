"""The PromQL source REST resource (/api/v1/promql-sources/) through the generic API tests, and its admin page."""

import pytest
from django.urls import reverse

from fleet.models import PromQLSource
from tests.api_base import APIResourceTests
from tests.factories import SiteFactory


class TestPromQLSourceAPI(APIResourceTests):
    basename = "promqlsource"
    model = PromQLSource
    compare_fields = ("name", "site", "url", "token_ref", "selector", "enabled")
    bad_payloads = [
        ({"url": "ftp://prometheus:9090"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": ""}, "url"),
        ({"token_ref": "s3cr3t-bearer-token-value"}, "token_ref"),
        ({"token_ref": "env:AWS_SECRET_ACCESS_KEY"}, "token_ref"),
        ({"token_ref": "file:/etc/passwd"}, "token_ref"),
        ({"selector": 'job="dcgm"\ninstance="x"'}, "selector"),
        ({"name": ""}, "name"),
        ({"name": "nul\x00name"}, "name"),
        ({"site": None}, "site"),
        ({"site": 987654321}, "site"),
        ({"enabled": "perhaps"}, "enabled"),
    ]
    counter = 0

    def make(self, **kwargs):
        TestPromQLSourceAPI.counter += 1
        defaults = {"name": f"prom-{self.counter}", "site": SiteFactory(), "url": "http://prometheus:9090"}
        return PromQLSource.objects.create(**{**defaults, **kwargs})

    def create_payload(self):
        return {
            "name": "thanos-eu",
            "site": SiteFactory().pk,
            "url": "https://thanos.example.com/prometheus",
            "token_ref": "env:FLEETDECK_THANOS_TOKEN",
            "selector": 'job="dcgm"',
            "enabled": True,
        }

    def update_payload(self, instance):
        return {"enabled": False, "selector": 'cluster="b"'}

    def test_reader_state_is_read_only(self, admin_api):
        source = self.make()
        response = admin_api.patch(
            self.detail_url(source.pk),
            {"consecutive_failures": 9, "last_error": "x", "read_until": "2026-01-01T00:00:00Z"},
            format="json",
        )
        assert response.status_code == 200
        source.refresh_from_db()
        assert (source.consecutive_failures, source.last_error, source.read_until) == (0, "", None)

    def test_duplicate_name_is_400(self, admin_api):
        self.make(name="thanos-eu")
        response = admin_api.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 400 and "name" in response.data

    def test_filter_by_enabled(self, admin_api):
        on, off = self.make(), self.make(enabled=False)
        response = admin_api.get(self.list_url(), {"enabled": "false"})
        assert [row["id"] for row in response.data["results"]] == [off.pk]
        assert on.pk not in [row["id"] for row in response.data["results"]]


@pytest.mark.django_db
def test_admin_lists_and_adds_sources(client, make_user):
    user = make_user("admin")
    client.force_login(user)
    PromQLSource.objects.create(name="prom-admin", site=SiteFactory(), url="http://prometheus:9090")
    response = client.get(reverse("admin:fleet_promqlsource_changelist"))
    assert response.status_code == 200 and b"prom-admin" in response.content
    assert client.get(reverse("admin:fleet_promqlsource_add")).status_code == 200
