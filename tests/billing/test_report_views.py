"""Report pages: list with the last delivery (errors visible), create/edit with per-address errors, delete,
preview with the chart embedded, send now; viewers read, operators edit; the nav links to the page."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import selectors
from billing.choices import DeliveryStatus
from billing.models import ReportDelivery, ReportSubscription
from billing.reports.periods import report_period_last
from core.choices import Role
from tests.billing.test_reports import PNG_MAGIC, ledger_fill
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def login(client, make_user):
    def as_role(role: str):
        client.force_login(make_user(role))
        return client

    return as_role


def subscription(**kwargs) -> ReportSubscription:
    return ReportSubscription.objects.create(
        **{"name": "Finance weekly", "recipients": ["finance@example.com"], **kwargs}
    )


def test_list_shows_last_delivery_and_failed_error_and_is_constant_in_queries(login, django_assert_max_num_queries):
    client = login(Role.VIEWER)
    sent, failed = subscription(name="A sent"), subscription(name="B failed", team=TeamFactory(name="Vision"))
    ReportDelivery.objects.create(
        subscription=sent,
        period_start=date(2026, 11, 16),
        period_end=date(2026, 11, 23),
        status=DeliveryStatus.SENT,
        total_usd=Decimal("1234.5"),
        sent_at=timezone.now(),
        attempts=1,
    )
    ReportDelivery.objects.create(
        subscription=failed,
        period_start=date(2026, 11, 16),
        period_end=date(2026, 11, 23),
        status=DeliveryStatus.FAILED,
        attempts=3,
        last_error="SMTPDataError: (451, b'Try again later')",
    )
    url = reverse("report-list")
    client.get(url)
    with django_assert_max_num_queries(8) as few:
        response = client.get(url)
    for i in range(5):
        subscription(name=f"more {i}", team=TeamFactory())
    with django_assert_max_num_queries(len(few)):
        many = client.get(url)
    assert many.status_code == 200
    html = response.content.decode()
    assert "1,234.50" in html and "Vision" in html and "Whole fleet" in html
    assert "failed" in html and "after 3 attempts" in html and "Try again later" in html
    assert reverse("report-create") not in html and "Send now" not in html  # a viewer reads only
    assert f'href="{url}" aria-current="page">Reports' in html


def test_reports_page_shows_a_period_with_its_last_day_and_money_with_separators(login):
    """A weekly delivery of [23 Nov, 30 Nov) (end exclusive, as stored and in the API) reads "2026-11-23 –
    2026-11-29" on the Reports page, as the email names it ("23 Nov to 29 Nov"); its total $398,578.80."""
    s = subscription()
    ReportDelivery.objects.create(
        subscription=s,
        period_start=date(2026, 11, 23),
        period_end=date(2026, 11, 30),
        status=DeliveryStatus.SENT,
        total_usd=Decimal("398578.8"),
        sent_at=datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
        attempts=1,
    )
    html = login(Role.VIEWER).get(reverse("report-list")).content.decode()
    assert "<td>2026-11-23 – 2026-11-29</td>" in html and "2026-11-30" not in html
    assert '<td class="num">398,578.80</td>' in html  # the deliveries table (its header says $)
    assert "2026-12-01 07:00, $398,578.80" in html  # the subscription's last delivery


def test_operator_creates_with_per_address_errors_then_valid(login):
    client = login(Role.OPERATOR)
    url = reverse("report-create")
    assert client.get(url).status_code == 200
    bad = client.post(
        url, {"name": "Fin", "recipients": "ok@example.com, nope, also@bad", "period": "weekly", "enabled": "on"}
    )
    assert bad.status_code == 200
    errors = bad.context["form"].errors["recipients"]
    assert any("“nope”" in e for e in errors) and any("“also@bad”" in e for e in errors)
    assert "“nope” is not a valid e-mail address." in bad.content.decode()
    for payload, field in [
        ({"recipients": " , "}, "recipients"),
        ({"period": "daily"}, "period"),
        ({"team": "987654"}, "team"),
        ({"name": ""}, "name"),
    ]:
        response = client.post(url, {"name": "Fin", "recipients": "a@example.com", "period": "weekly", **payload})
        assert response.status_code == 200 and field in response.context["form"].errors, payload
    assert not ReportSubscription.objects.exists()
    team = TeamFactory()
    ok = client.post(
        url,
        {
            "name": "Fin",
            "recipients": "a@example.com; b@example.com\nA@example.com, a@example.com",
            "period": "monthly",
            "team": team.pk,
            "enabled": "on",
        },
    )
    assert ok.status_code == 302 and ok["Location"] == reverse("report-list")
    created = ReportSubscription.objects.get()
    assert created.recipients == ["a@example.com", "b@example.com", "A@example.com"]
    assert (created.period, created.team, created.enabled) == ("monthly", team, True)
    assert created.created_by.username.startswith("operator")


def test_edit_and_delete(login):
    client = login(Role.OPERATOR)
    s = subscription(recipients=["a@example.com", "b@example.com"])
    page = client.get(reverse("report-edit", args=[s.pk]))
    assert "a@example.com, b@example.com" in page.content.decode()
    response = client.post(
        reverse("report-edit", args=[s.pk]), {"name": "Renamed", "recipients": "c@example.com", "period": "weekly"}
    )
    assert response.status_code == 302
    s.refresh_from_db()
    assert (s.name, s.recipients, s.enabled) == ("Renamed", ["c@example.com"], False)
    assert client.get(reverse("report-delete", args=[s.pk])).status_code == 200
    assert client.post(reverse("report-delete", args=[s.pk])).status_code == 302
    assert not ReportSubscription.objects.exists()
    assert client.get(reverse("report-edit", args=[s.pk])).status_code == 404


def test_viewer_cannot_write(login):
    client = login(Role.VIEWER)
    s = subscription()
    assert client.get(reverse("report-create")).status_code == 403
    assert (
        client.post(
            reverse("report-create"), {"name": "x", "recipients": "a@example.com", "period": "weekly"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            reverse("report-edit", args=[s.pk]), {"name": "x", "recipients": "a@example.com", "period": "weekly"}
        ).status_code
        == 403
    )
    assert client.post(reverse("report-delete", args=[s.pk])).status_code == 403
    assert client.post(reverse("report-send", args=[s.pk])).status_code == 403
    assert ReportSubscription.objects.get().name == "Finance weekly" and not ReportDelivery.objects.exists()


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("report-list"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_preview_renders_the_report_with_the_chart_embedded(login):
    client = login(Role.VIEWER)
    s = subscription()
    start, end = report_period_last(period=s.period, now=timezone.now())
    ledger_fill(start=start, days=7)
    response = client.get(reverse("report-preview", args=[s.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    total = selectors.spend_totals(start=start, end=end).total_usd.quantize(Decimal("0.01"))
    assert f"{total:,}" in html and total > 0
    encoded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1)
    assert base64.b64decode(encoded).startswith(PNG_MAGIC)
    assert "cid:" not in html
    assert "Send the last complete period now" not in html  # viewers cannot send
    for which in ("current", "nonsense"):
        assert client.get(reverse("report-preview", args=[s.pk]), {"which": which}).status_code == 200
    assert client.get(reverse("report-preview", args=[987654])).status_code == 404


def test_send_now_queues_a_manual_delivery_with_a_message(login, django_capture_on_commit_callbacks):
    client = login(Role.OPERATOR)
    s = subscription()
    assert client.get(reverse("report-send", args=[s.pk])).status_code == 405
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("report-send", args=[s.pk]), follow=True)
    assert response.status_code == 200
    delivery = ReportDelivery.objects.get()
    assert delivery.manual and delivery.status == DeliveryStatus.PENDING and len(callbacks) == 1
    last_day = delivery.period_end - timedelta(days=1)  # the period as people read it: its last day, not the end
    assert f"for {delivery.period_start:%Y-%m-%d} – {last_day:%Y-%m-%d} queued for finance@example.com" in (
        response.content.decode()
    )


def test_a_viewer_limited_to_a_team_sees_only_its_reports(client, make_user):
    mine, other = TeamFactory(name="Mine"), TeamFactory(name="Other")
    viewer = make_user(Role.VIEWER)
    mine.members.add(viewer)
    client.force_login(viewer)
    own = subscription(name="Own report", team=mine)
    hidden = [subscription(name="Fleet report"), subscription(name="Other report", team=other)]
    for s, total in ((own, "11.00"), (hidden[0], "987.65"), (hidden[1], "432.10")):
        ReportDelivery.objects.create(
            subscription=s,
            period_start=date(2026, 11, 16),
            period_end=date(2026, 11, 23),
            status=DeliveryStatus.SENT,
            total_usd=Decimal(total),
        )
    html = client.get(reverse("report-list")).content.decode()
    assert "Own report" in html and "Fleet report" not in html and "Other report" not in html
    assert "987.65" not in html and "432.10" not in html
    assert client.get(reverse("report-preview", args=[own.pk])).status_code == 200
    for s in hidden:
        assert client.get(reverse("report-preview", args=[s.pk])).status_code == 404
