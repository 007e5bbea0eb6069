"""REST API of reports: subscriptions (generic CRUD tests, send-now, preview) and deliveries (read-only)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import selectors
from billing.choices import DeliveryStatus
from billing.models import ReportDelivery, ReportSubscription
from billing.reports.periods import report_period_last
from core.choices import Role
from tests.api_base import APIResourceTests
from tests.billing.test_reports import ledger_fill
from tests.factories import TeamFactory


class TestReportSubscriptionAPI(APIResourceTests):
    basename = "report-subscription"
    model = ReportSubscription
    compare_fields = ("name", "recipients", "period", "enabled")
    bad_payloads = [
        ({"recipients": ["not-an-address"]}, "recipients"),
        ({"recipients": ["ok@example.com", "bad@"]}, "recipients"),
        ({"recipients": []}, "recipients"),
        ({"recipients": "finance@example.com"}, "recipients"),
        ({"period": "daily"}, "period"),
        ({"team": 987654321}, "team"),
        ({"name": ""}, "name"),
        ({"enabled": "perhaps"}, "enabled"),
    ]

    def make(self, **kwargs):
        return ReportSubscription.objects.create(
            **{"name": "Weekly", "recipients": ["finance@example.com"], "team": TeamFactory(), **kwargs}
        )

    def create_payload(self):
        return {
            "name": "Finance",
            "recipients": ["finance@example.com", "cfo@example.com"],
            "period": "monthly",
            "team": None,
            "enabled": True,
        }

    def update_payload(self, instance):
        return {"recipients": ["new@example.com"], "enabled": False}


def test_bad_recipient_message_names_the_address(admin_api, db):
    payload = {"name": "x", "recipients": ["ok@example.com", "nope"], "period": "weekly"}
    response = admin_api.post(reverse("api:report-subscription-list"), payload, format="json")
    assert response.status_code == 400
    assert "valid email" in str(response.data["recipients"][1][0]).lower()


def test_created_by_is_the_requesting_user(api_client, db):
    operator = api_client(Role.OPERATOR)
    payload = {"name": "Ops", "recipients": ["ops@example.com"], "period": "weekly"}
    response = operator.post(reverse("api:report-subscription-list"), payload, format="json")
    assert response.status_code == 201, response.data
    assert response.data["created_by"] == operator.user.username


@pytest.mark.django_db
def test_send_now_queues_a_manual_delivery_for_operators_not_viewers(api_client, django_capture_on_commit_callbacks):
    subscription = ReportSubscription.objects.create(name="w", recipients=["a@example.com"])
    url = reverse("api:report-subscription-send-now", kwargs={"pk": subscription.pk})
    assert api_client(Role.VIEWER).post(url).status_code == 403
    assert api_client(Role.ADMIN, read_only=True).post(url).status_code == 403
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client(Role.OPERATOR).post(url)
    assert response.status_code == 202, response.data
    delivery = ReportDelivery.objects.get()
    assert response.data["id"] == delivery.pk and delivery.manual and delivery.status == DeliveryStatus.PENDING
    assert len(callbacks) == 1  # report_deliver is enqueued once the request's transaction commits
    assert (
        api_client(Role.OPERATOR).post(reverse("api:report-subscription-send-now", kwargs={"pk": 98765})).status_code
        == 404
    )


@pytest.mark.django_db
def test_preview_returns_subject_text_html_with_the_spend_total(api_client):
    subscription = ReportSubscription.objects.create(name="w", recipients=["a@example.com"])
    from django.utils import timezone

    start, end = report_period_last(period=subscription.period, now=timezone.now())
    ledger_fill(start=start, days=7)
    url = reverse("api:report-subscription-preview", kwargs={"pk": subscription.pk})
    response = api_client(Role.VIEWER).get(url)
    assert response.status_code == 200, response.data
    expected = selectors.spend_totals(start=start, end=end).total_usd.quantize(Decimal("0.01"))
    assert Decimal(response.data["total_usd"]) == expected > 0
    assert f"{expected:,}" in response.data["subject"] and f"{expected:,}" in response.data["text"]
    assert response.data["html"].startswith("<!doctype html>")
    assert response.data["period_start"] == start.isoformat()
    current = api_client(Role.VIEWER).get(url, {"which": "current"})
    assert current.status_code == 200
    bad = api_client(Role.VIEWER).get(url, {"which": "tomorrow"})
    assert bad.status_code == 400 and "which" in bad.data


@pytest.mark.django_db
def test_deliveries_are_read_only_filterable_and_constant_in_queries(admin_api, django_assert_max_num_queries):
    subscriptions = [ReportSubscription.objects.create(name=f"s{i}", recipients=["a@example.com"]) for i in range(3)]
    for i, s in enumerate(subscriptions):
        ReportDelivery.objects.create(
            subscription=s, period_start=date(2026, 11, 9), period_end=date(2026, 11, 16), status=DeliveryStatus.SENT
        )
        ReportDelivery.objects.create(
            subscription=s,
            period_start=date(2026, 11, 16),
            period_end=date(2026, 11, 23),
            status=DeliveryStatus.FAILED,
            attempts=i + 1,
            last_error="SMTPDataError: 451",
        )
    url = reverse("api:report-delivery-list")
    admin_api.get(url)
    with django_assert_max_num_queries(5):  # token, user, permissions, count, page: not one per row
        response = admin_api.get(url)
    assert response.data["count"] == 6
    failed = admin_api.get(url, {"status": "failed", "subscription": subscriptions[1].pk})
    assert [(r["status"], r["attempts"], r["last_error"]) for r in failed.data["results"]] == [
        ("failed", 2, "SMTPDataError: 451")
    ]
    assert admin_api.get(url, {"status": "lost"}).status_code == 400
    assert admin_api.get(url, {"subscription": "x"}).status_code == 400
    assert admin_api.get(url, {"ordering": "nope"}).status_code == 400
    assert admin_api.post(url, {}, format="json").status_code == 405
    detail = reverse("api:report-delivery-detail", kwargs={"pk": failed.data["results"][0]["id"]})
    assert admin_api.delete(detail).status_code == 405


@pytest.mark.django_db
def test_a_viewer_limited_to_a_team_sees_only_its_subscriptions_and_deliveries(api_client):
    mine, other = TeamFactory(), TeamFactory()
    viewer = api_client(Role.VIEWER)
    mine.members.add(viewer.user)
    own = ReportSubscription.objects.create(name="own", recipients=["a@example.com"], team=mine)
    fleet = ReportSubscription.objects.create(name="fleet", recipients=["a@example.com"])
    theirs = ReportSubscription.objects.create(name="theirs", recipients=["a@example.com"], team=other)
    deliveries = {
        s.pk: ReportDelivery.objects.create(
            subscription=s, period_start=date(2026, 11, 16), period_end=date(2026, 11, 23), status=DeliveryStatus.SENT
        )
        for s in (own, fleet, theirs)
    }
    listed = viewer.get(reverse("api:report-subscription-list")).data["results"]
    assert [row["id"] for row in listed] == [own.pk]
    listed = viewer.get(reverse("api:report-delivery-list")).data["results"]
    assert [row["id"] for row in listed] == [deliveries[own.pk].pk]
    assert viewer.get(reverse("api:report-subscription-preview", kwargs={"pk": own.pk})).status_code == 200
    for s in (fleet, theirs):
        assert viewer.get(reverse("api:report-subscription-detail", kwargs={"pk": s.pk})).status_code == 404
        assert viewer.get(reverse("api:report-subscription-preview", kwargs={"pk": s.pk})).status_code == 404
        assert viewer.get(reverse("api:report-delivery-detail", kwargs={"pk": deliveries[s.pk].pk})).status_code == 404
    # An unscoped viewer still sees them all.
    assert api_client(Role.VIEWER).get(reverse("api:report-subscription-list")).data["count"] == 3
