"""Carbon API (billing/api/carbon.py): each site's intensity and its source, the hourly import (operators and
admins only), and the operator's value on the site API."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from billing.carbon import carbon_data_load, sites_without_intensity
from billing.models import GridIntensity, GridIntensityHour, LedgerEntry
from core.choices import Role
from fleet.choices import NodeLifecycle
from fleet.models import Site
from tests.billing.test_ledger import node_with_gpus, rollup_insert
from tests.billing.test_report_delivery import eager_celery  # noqa: F401 - fixture
from tests.factories import OnPremSiteFactory, ProviderFactory, SiteFactory

pytestmark = pytest.mark.django_db

D = Decimal
IMPORT = "api:carbon-intensities-import"
LIST = "api:carbon-intensities"


def upload(text: str, name: str = "intensity.csv") -> dict:
    return {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv")}


def test_only_operators_and_admins_import_and_never_with_a_read_only_token(api_client):
    OnPremSiteFactory(name="dc-ams1")
    body = "site,hour,g_per_kwh\ndc-ams1,2026-03-02T10:00Z,236\n"
    assert APIClient().post(reverse(IMPORT), upload(body), format="multipart").status_code == 401
    assert api_client(Role.VIEWER).post(reverse(IMPORT), upload(body), format="multipart").status_code == 403
    read_only = api_client(Role.ADMIN, read_only=True)
    assert read_only.post(reverse(IMPORT), upload(body), format="multipart").status_code == 403
    assert not GridIntensityHour.objects.exists()
    for role in (Role.OPERATOR, Role.ADMIN):
        response = api_client(role).post(reverse(IMPORT), upload(body), format="multipart")
        assert response.status_code == 200, response.data
    assert GridIntensityHour.objects.get().g_per_kwh == D("236")


def test_an_import_answers_counts_and_queues_the_ledger_of_those_sites_nodes(
    api_client,
    django_capture_on_commit_callbacks,
    eager_celery,  # noqa: F811
):
    site = OnPremSiteFactory(name="dc-ams1", pue=D("1.40"), carbon_g_per_kwh=D("236"))
    node = node_with_gpus(
        site=site, lifecycle=NodeLifecycle.OWNED, external_id="", launched_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    node_with_gpus(site=OnPremSiteFactory(), lifecycle=NodeLifecycle.OWNED, external_id="")  # another site's
    ten = datetime(2026, 3, 2, 10, tzinfo=UTC)
    rollup_insert(node, ten, energy_wh=700.0)
    body = "site,hour,g_per_kwh\ndc-ams1,2026-03-02T10:00Z,50\ndc-ams1,2026-03-03T23:00Z,60\n"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api_client(Role.OPERATOR).post(reverse(IMPORT), upload(body), format="multipart")
    assert response.status_code == 200, response.data
    assert response.data == {
        "rows": 2,
        "created": 2,
        "updated": 0,
        "sites": ["dc-ams1"],
        "first_hour": "2026-03-02T10:00:00Z",
        "last_hour": "2026-03-03T23:00:00Z",
        "ledger_backfill": {"date_from": "2026-03-02", "date_to": "2026-03-03", "nodes": 1},
    }
    assert len(callbacks) == 1
    # the queued backfill ran (eagerly): 8 × 700 Wh × PUE 1.4 = 7.84 kWh × 50 g / 1000
    assert LedgerEntry.objects.get(node=node, hour=ten).co2e_kg == D("0.392000")
    assert LedgerEntry.objects.filter(node=node).count() == 48  # only that site's node, both days


def test_a_bad_upload_is_a_400_listing_the_lines_and_writes_nothing(api_client, django_capture_on_commit_callbacks):
    OnPremSiteFactory(name="dc-ams1")
    operator = api_client(Role.OPERATOR)
    body = "site,hour,g_per_kwh\ndc-ams1,2026-03-02T10:00Z,236\ndc-fra1,2026-03-02T10:30Z,9999\n"
    with django_capture_on_commit_callbacks() as callbacks:
        response = operator.post(reverse(IMPORT), upload(body), format="multipart")
    assert response.status_code == 400
    assert response.data["file"] == [
        "unknown site 'dc-fra1' on 1 line(s): 3",
        "line 3: hour: '2026-03-02T10:30Z' is not the start of a UTC hour (10:30:00 UTC)",
        "line 3: g_per_kwh: 9999 gCO2e/kWh is absurd: above 2000 (the dirtiest grids are about 1,100)",
    ]
    assert not GridIntensityHour.objects.exists() and not callbacks
    assert operator.post(reverse(IMPORT), {}, format="multipart").status_code == 400  # no file
    missing = operator.post(reverse(IMPORT), upload("site,g_per_kwh\n"), format="multipart")
    assert missing.status_code == 400 and "column 'hour' is missing" in missing.data["file"][0]
    assert operator.post(reverse(IMPORT), {"file": "site,hour,g_per_kwh"}, format="json").status_code == 400
    as_json = operator.post(
        reverse(IMPORT), {"csv": "site,hour,g_per_kwh\ndc-ams1,2026-03-02T10:00Z,-1\n"}, format="json"
    )
    assert as_json.status_code == 400 and as_json.data["file"] == [
        "line 2: g_per_kwh: -1 is negative: an intensity is 0 or more gCO2e/kWh"
    ]
    assert not GridIntensityHour.objects.exists()
    as_json = operator.post(
        reverse(IMPORT), {"csv": "site,hour,g_per_kwh\ndc-ams1,2026-03-02T10:00Z,236\n"}, format="json"
    )
    assert as_json.status_code == 200 and as_json.data["rows"] == 1  # the CSV as JSON text, for scripts


def test_the_intensity_list_says_where_each_sites_value_comes_from(api_client, django_assert_max_num_queries):
    carbon_data_load()
    hour = datetime(2026, 3, 2, 10, tzinfo=UTC)
    hourly = OnPremSiteFactory(name="dc-a", carbon_g_per_kwh=D("236"))
    GridIntensityHour.objects.create(site=hourly, hour=hour, g_per_kwh=D("120.5"))
    GridIntensityHour.objects.create(site=hourly, hour=datetime(2026, 3, 5, tzinfo=UTC), g_per_kwh=D("1"))
    OnPremSiteFactory(name="dc-b", carbon_g_per_kwh=D("198"))
    OnPremSiteFactory(name="dc-c")  # on-prem, no operator value: unknown
    SiteFactory(name="gcp-x", provider=ProviderFactory(kind="gcp"), region="us-central1")
    SiteFactory(name="gcp-y", provider=ProviderFactory(kind="gcp"), region="us-central1", carbon_g_per_kwh=D("90"))
    SiteFactory(name="aws-z", region="ap-south-2")  # a region the dataset lacks
    client = api_client(Role.VIEWER)
    with django_assert_max_num_queries(8):
        response = client.get(reverse(LIST), {"at": "2026-03-02T10:42:00+00:00"})
    assert response.status_code == 200, response.data
    rows = {r["site_name"]: r for r in response.data}
    figures = {name: (r["g_per_kwh"], r["source"]) for name, r in rows.items()}
    assert figures == {
        "dc-a": ("120.50", "hourly"),
        "dc-b": ("198.00", "operator"),
        "dc-c": (None, "unknown"),
        "gcp-x": ("430.00", "dataset"),
        "gcp-y": ("90.00", "operator"),  # the operator's value beats the dataset
        "aws-z": (None, "unknown"),
    }
    assert rows["dc-a"]["hour"] == "2026-03-02T10:00:00Z" and rows["dc-a"]["latest_hourly"] == "2026-03-05T00:00:00Z"
    assert rows["dc-a"]["operator_g_per_kwh"] == "236.00" and rows["dc-a"]["warning"] == ""
    assert rows["gcp-y"]["dataset_g_per_kwh"] == "430.00" and "CodeCarbon 3.3.2" in rows["gcp-y"]["dataset_source"]
    assert rows["dc-c"]["warning"].startswith("An on-prem site needs its operator value (carbon_g_per_kwh)")
    assert "no value for aws region 'ap-south-2'" in rows["aws-z"]["warning"]
    assert [r.site.name for r in sites_without_intensity()] == ["aws-z", "dc-c"]
    # another hour: dc-a falls back to its operator value
    later = {r["site_name"]: r["source"] for r in client.get(reverse(LIST), {"at": "2026-03-02T11:00Z"}).data}
    assert later["dc-a"] == "operator"
    assert client.get(reverse(LIST), {"at": "not-a-time"}).status_code == 400


def test_a_hostile_site_name_is_returned_as_data(api_client):
    GridIntensity.objects.create(provider_kind="aws", region="us-east-1", g_per_kwh=D("379.07"), source="s")
    site = SiteFactory(name="x")
    Site.objects.filter(pk=site.pk).update(name="<script>alert(1)</script>")  # bypasses the slug validator
    response = api_client(Role.VIEWER).get(reverse(LIST))
    assert response["Content-Type"] == "application/json"
    assert response.data[0]["site_name"] == "<script>alert(1)</script>"


# --- the operator's value on the site API ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ("-1", 400, "greater than or equal to 0"),
        ("2000.01", 400, "less than or equal to 2000"),
        ("1e9", 400, "digits"),
        ("abc", 400, "A valid number is required."),
        ("450.5", 200, None),
        ("0", 200, None),
        (None, 200, None),
    ],
)
def test_the_site_api_edits_and_validates_the_operator_carbon_value(api_client, value, status, message):
    site = OnPremSiteFactory()
    url = reverse("api:site-detail", kwargs={"pk": site.pk})
    response = api_client(Role.OPERATOR).patch(url, {"carbon_g_per_kwh": value}, format="json")
    assert response.status_code == status, response.data
    site.refresh_from_db()
    if status == 400:
        assert message in str(response.data["carbon_g_per_kwh"]) and site.carbon_g_per_kwh is None
    else:
        assert response.data["carbon_g_per_kwh"] == (None if value is None else f"{D(value):.2f}")
        assert site.carbon_g_per_kwh == (None if value is None else D(value))


def test_hostile_json_bodies_are_400(api_client):
    operator = api_client(Role.OPERATOR)
    for text in (
        '{"csv": "\\ud800"}',
        '{"\\ud800": 1}',
        "[" * 100 + "]" * 100,
        '{"csv": ' + "[" * 100 + "]" * 100 + "}",
    ):
        response = operator.generic("POST", reverse(IMPORT), text, content_type="application/json")
        assert response.status_code == 400, (text[:20], response.content[:200])
