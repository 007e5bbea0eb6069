"""Issue #4's "done when": on the demo fleet, the spend page, the overview, the spend API, a budget alert and a
weekly report received through a real SMTP server all show the same totals — and those equal the ledger's sum."""

from __future__ import annotations

import csv
import email
import io
import re
from datetime import UTC, timedelta
from decimal import Decimal
from email import policy

import pytest
from django.core import mail
from django.db.models import Sum
from django.utils import timezone

from billing.budgets import budget_alerts_check
from billing.models import CommitmentHour, LedgerEntry
from billing.reports.delivery import report_deliveries_due, report_delivery_send
from billing.selectors import month_start_of
from devtools.demo.billing import demo_budgets_seed, demo_ledger_seed, demo_prices_seed, demo_reports_seed
from devtools.demo.fleet import demo_fleet_seed
from tests.billing.test_report_smtp import smtp_server  # noqa: F401 - a fixture

CENT = Decimal("0.01")


def _ledger_usd(start, end) -> Decimal:
    """The ledger's own sum for UTC days [start, end): what every page must agree with."""
    since = timezone.datetime.combine(start, timezone.datetime.min.time(), tzinfo=UTC)
    until = timezone.datetime.combine(end, timezone.datetime.min.time(), tzinfo=UTC)
    sums = LedgerEntry.objects.filter(hour__gte=since, hour__lt=until).aggregate(
        c=Sum("compute_usd"), e=Sum("energy_usd")
    )
    # The demo's commitments: what they cost and nothing used is spend too.
    unused = CommitmentHour.objects.filter(hour__gte=since, hour__lt=until).aggregate(u=Sum("unused_usd"))["u"]
    return ((sums["c"] or 0) + (sums["e"] or 0) + (unused or 0)).quantize(CENT)


def _testid(html: str, testid: str) -> Decimal:
    match = re.search(rf'data-testid="{testid}">\$([0-9,.]+)<', html)
    assert match, f"{testid} not on the page"
    return Decimal(match.group(1).replace(",", ""))


@pytest.fixture
def demo(db):
    """The demo fleet with its prices, 30 days of ledger, budgets tight enough to alert, and the weekly report."""
    demo_fleet_seed(nodes=40, seed=11)
    demo_prices_seed()
    report = demo_ledger_seed(days=30)
    assert report.unpriced_count == 0, report.unpriced_nodes  # every demo node has a price or a cost model
    # Half the forecast: every team has passed 80 % (or at least has a forecast over budget) by the 10th.
    demo_budgets_seed(headroom=Decimal("0.5"))
    return demo_reports_seed()


def test_spend_page_overview_api_budget_alert_and_weekly_report_show_the_same_totals(
    demo,
    client,
    make_user,
    smtp_server,  # noqa: F811 - the imported fixture
):
    now = timezone.now()
    today = now.astimezone(UTC).date()
    month_start = month_start_of(today)
    month_usd = _ledger_usd(month_start, today + timedelta(days=1))
    assert month_usd > 0
    client.force_login(make_user("admin"))

    # Spend page (default range: this month to today) and the overview agree with the ledger.
    page = client.get("/spend/").content.decode()
    assert _testid(page, "spend-month") == month_usd
    assert _testid(page, "spend-range") == month_usd
    overview = client.get("/").content.decode()
    assert _testid(overview, "spend-month") == month_usd

    # The summary API by team: its rows add up to the same total.
    summary = client.get(
        "/api/v1/spend/summary/", {"group_by": "team", "from": month_start.isoformat(), "to": today.isoformat()}
    ).json()
    by_team = {row["label"]: Decimal(row["total_usd"]) for row in summary["rows"]}
    assert Decimal(summary["totals"]["total_usd"]).quantize(CENT) == month_usd
    assert sum(by_team.values()).quantize(CENT) == month_usd

    # Budget alerts go out through SMTP; each states its team's month-to-date spend, equal to the API's.
    alerts = budget_alerts_check(today=today)
    assert alerts, "no budget crossed a threshold"
    received = [email.message_from_bytes(raw, policy=policy.default) for raw in smtp_server.recorder.messages]
    assert len(received) == len({(a.budget_id, a.kind, a.threshold_pct) for a in alerts})
    for message in received:
        text = message.get_body(("plain",)).get_content()
        team = re.search(r"Budget alert: (.+?),", text).group(1)
        spent = Decimal(re.search(r"Spent so far:\s+\$([0-9,.]+)", text).group(1).replace(",", ""))
        assert spent == by_team[team].quantize(CENT), team
    assert budget_alerts_check(today=today) == []  # once per threshold per month
    assert len(smtp_server.recorder.messages) == len(received)

    # The weekly report, due for last week, arrives once through the SMTP server with the page's figure.
    smtp_server.recorder.messages.clear()
    (delivery_id,) = report_deliveries_due(now=now)
    assert report_deliveries_due(now=now) == []  # beat firing twice creates nothing new
    delivery = report_delivery_send(delivery_id=delivery_id, now=now)
    report_delivery_send(delivery_id=delivery_id, now=now)  # a retried task sends nothing more
    (raw,) = smtp_server.recorder.messages
    message = email.message_from_bytes(raw, policy=policy.default)
    week_usd = _ledger_usd(delivery.period_start, delivery.period_end)
    assert week_usd > 0
    attachment = next(part for part in message.iter_attachments() if part.get_content_type() == "text/csv")
    rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
    (total_row,) = [row for row in rows if row["section"] == "total"]
    assert Decimal(total_row["total_usd"]) == week_usd
    assert f"${week_usd:,}" in message["subject"]
    last_day = delivery.period_end - timedelta(days=1)
    week_page = client.get(
        "/spend/", {"date_from": delivery.period_start.isoformat(), "date_to": last_day.isoformat()}
    ).content.decode()
    assert _testid(week_page, "spend-range") == week_usd
    assert mail.outbox == []  # everything above went through the real SMTP server
