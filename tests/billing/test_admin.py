"""billing/admin.py: every billing model has a working admin; prices are overrides; the ledger is read-only."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from billing.catalogue import catalogue_load
from billing.choices import PriceSource
from billing.models import (
    BilledCost,
    Budget,
    BudgetAlert,
    Discount,
    EgressRate,
    EgressRecord,
    InstancePrice,
    LedgerDay,
    LedgerEntry,
    OnPremCostModel,
    ReportDelivery,
    ReportSubscription,
)
from tests.factories import NodeFactory, OnPremSiteFactory, ProjectFactory, ProviderFactory

pytestmark = pytest.mark.django_db
ALL_MODELS = (
    InstancePrice,
    Discount,
    OnPremCostModel,
    EgressRate,
    LedgerEntry,
    LedgerDay,
    EgressRecord,
    BilledCost,
    Budget,
    BudgetAlert,
    ReportSubscription,
    ReportDelivery,
)
READ_ONLY = (LedgerEntry, LedgerDay, EgressRecord, BilledCost, BudgetAlert, ReportDelivery)


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-test-password")
    client.force_login(user)
    return client


def url(model, action="changelist", *args):
    return reverse(f"admin:billing_{model._meta.model_name}_{action}", args=args)


@pytest.fixture
def rows():
    """One or more rows of every billing model."""
    catalogue_load()
    node = NodeFactory()
    project = ProjectFactory()
    hour = datetime(2026, 1, 1, 10, tzinfo=UTC)
    money = {"compute_usd": 55, "energy_kwh": 0, "energy_usd": 0, "gpu_hours": 8, "idle_gpu_hours": 0, "idle_usd": 0}
    LedgerEntry.objects.create(
        node=node,
        hour=hour,
        provider=node.site.provider,
        provider_kind="aws",
        site=node.site,
        team=project.team,
        project=project,
        gpu_model="NVIDIA H100 80GB HBM3",
        lifecycle="on-demand",
        gpu_count=8,
        active_s=3600,
        rate_usd_per_h=55,
        **money,
    )
    LedgerDay.objects.create(
        day=hour.date(),
        provider=node.site.provider,
        provider_kind="aws",
        site=node.site,
        team=project.team,
        project=project,
        lifecycle="on-demand",
        nodes=1,
        total_usd=55,
        **money,
    )
    EgressRecord.objects.create(
        occurred_at=hour,
        source="aws:us-east-1",
        destination="gcp:us-central1",
        source_provider_kind="aws",
        location_class="other-cloud",
        bytes=10**12,
        usd=Decimal("81"),
        cause="manual",
    )
    BilledCost.objects.create(provider=node.site.provider, day=hour.date(), usd=Decimal("1320"))
    Discount.objects.create(provider=node.site.provider, percent=10, effective_from=date(2025, 1, 1))
    OnPremCostModel.objects.create(
        site=OnPremSiteFactory(),
        purchase_usd_per_gpu=37500,
        amortisation_months=48,
        ops_usd_per_gpu_year=3750,
        effective_from=date(2025, 1, 1),
    )
    budget = Budget.objects.create(project=project, monthly_usd=10000, thresholds_pct=[50, 100])
    BudgetAlert.objects.create(
        budget=budget, month=date(2026, 1, 1), kind="threshold", threshold_pct=50, spend_usd=5000, forecast_usd=9000
    )
    subscription = ReportSubscription.objects.create(name="Weekly fleet", recipients=["a@example.com"])
    ReportDelivery.objects.create(
        subscription=subscription, period_start=date(2026, 1, 5), period_end=date(2026, 1, 12)
    )


def test_every_billing_model_has_a_changelist_and_a_detail_page(admin_client, rows):
    for model in ALL_MODELS:
        response = admin_client.get(url(model))
        assert response.status_code == 200, model
        obj = model.objects.order_by("pk").first()
        assert admin_client.get(url(model, "change", obj.pk)).status_code == 200, model


def test_changelists_do_not_grow_queries_with_rows(admin_client, rows):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    models = (LedgerEntry, OnPremCostModel, Discount, Budget, BudgetAlert, ReportDelivery)
    few = {}
    for model in models:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url(model)).status_code == 200
        few[model] = len(queries)
    entry = LedgerEntry.objects.first()
    for n in range(1, 4):
        node = NodeFactory()
        entry.pk, entry.node, entry.site, entry.provider = None, node, node.site, node.site.provider
        entry.save()
        Discount.objects.create(provider=node.site.provider, percent=n, effective_from=date(2025, 1, 1))
        OnPremCostModel.objects.create(
            site=OnPremSiteFactory(),
            purchase_usd_per_gpu=1000,
            amortisation_months=48,
            ops_usd_per_gpu_year=0,
            effective_from=date(2025, 1, 1),
        )
        budget = Budget.objects.create(team=ProjectFactory().team, monthly_usd=100)
        BudgetAlert.objects.create(budget=budget, month=date(2026, 1, 1), kind="forecast", spend_usd=1, forecast_usd=2)
        ReportDelivery.objects.create(
            subscription=ReportSubscription.objects.first(), period_start=date(2026, 2, n), period_end=date(2026, 3, 1)
        )
    for model in models:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url(model)).status_code == 200
        assert len(queries) == few[model], model


def test_price_search_and_filters(admin_client, rows):
    response = admin_client.get(url(InstancePrice), {"q": "p5.48xlarge"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 4  # us-east-1 (two days), ap-northeast-1, eu-west-2
    filtered = admin_client.get(url(InstancePrice), {"provider_kind__exact": "gcp", "gpu_model": "L4"})
    assert filtered.context["cl"].result_count == 2


def test_an_admin_added_price_is_an_override_and_shipped_rows_are_read_only(admin_client, rows):
    form = admin_client.get(url(InstancePrice, "add"))
    assert form.context["adminform"].form.initial["source"] == PriceSource.OVERRIDE
    response = admin_client.post(
        url(InstancePrice, "add"),
        {
            "provider_kind": "aws",
            "region": "us-east-1",
            "instance_type": "p5.48xlarge",
            "gpu_model": "H100",
            "gpu_count": 8,
            "on_demand_usd_per_h": "40",
            "spot_usd_per_h": "",
            "effective_from": "2025-07-01",
            "source": PriceSource.OVERRIDE,
            "note": "private pricing",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert InstancePrice.objects.filter(source=PriceSource.OVERRIDE, on_demand_usd_per_h=40).exists()
    shipped = InstancePrice.objects.filter(source=PriceSource.CATALOGUE).first()
    page = admin_client.get(url(InstancePrice, "change", shipped.pk))
    assert "on_demand_usd_per_h" not in page.context["adminform"].form.fields


def test_an_onprem_price_or_no_price_is_refused_with_a_field_message(admin_client, rows):
    response = admin_client.post(
        url(InstancePrice, "add"),
        {
            "provider_kind": "onprem",
            "region": "dc-1",
            "instance_type": "dgx-h100",
            "gpu_model": "H100",
            "gpu_count": 8,
            "on_demand_usd_per_h": "",
            "spot_usd_per_h": "",
            "effective_from": "2025-07-01",
            "source": PriceSource.OVERRIDE,
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "provider_kind" in errors and "on_demand_usd_per_h" in errors


def test_ledger_rows_are_read_only(admin_client, rows):
    for model in READ_ONLY:
        assert admin_client.get(url(model, "add")).status_code == 403, model
        obj = model.objects.first()
        assert admin_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403, model
        assert model.objects.filter(pk=obj.pk).exists()


def test_cost_model_page_shows_usd_per_gpu_hour(admin_client, rows):
    response = admin_client.get(url(OnPremCostModel))
    assert "1.4983" in response.content.decode()


def test_report_subscription_added_in_the_admin_records_who(admin_client, rows):
    response = admin_client.post(
        url(ReportSubscription, "add"),
        {
            "name": "Monthly",
            "recipients": "cfo@example.com",
            "period": "monthly",
            "enabled": "on",
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    assert ReportSubscription.objects.get(name="Monthly").created_by.username == "root"


def test_discount_with_a_bad_period_is_refused(admin_client, rows):
    response = admin_client.post(
        url(Discount, "add"),
        {
            "provider": ProviderFactory().pk,
            "percent": "150",
            "applies_to": "all",
            "effective_from": "2025-06-01",
            "effective_to": "2025-05-01",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "percent" in errors
