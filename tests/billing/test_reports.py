"""Report data and rendering (billing.reports): periods, figures equal to the spend selectors, HTML with inline
styles and the chart by Content-ID, plain text, CSV whose total row is the report total."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from billing import selectors
from billing.choices import EgressCause, ReportPeriod
from billing.ledger import ledger_node_days_refresh
from billing.models import Budget, EgressRecord, LedgerDay, LedgerEntry, ReportSubscription
from billing.reports.data import report_data
from billing.reports.periods import period_containing_end, report_period_last
from billing.reports.render import CHART_CID, report_render
from fleet.choices import NodeLifecycle
from tests.factories import NodeFactory, OnPremSiteFactory, SiteFactory, TeamFactory

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEEK_START, WEEK_END = date(2026, 11, 16), date(2026, 11, 23)


def ledger_fill(*, start: date, days: int, seed: int = 0) -> dict:
    """Ledger rows for two teams on a cloud site and an on-prem site (plus team-less rows), and idle node-hours.

    Returns the objects, so tests can scope by team. Figures vary by day and dimension so sums are not trivial.
    """
    cloud, onprem = SiteFactory(), OnPremSiteFactory()
    research, infer = TeamFactory(name=f"Research {seed}"), TeamFactory(name=f"Inference {seed}")
    nodes = [
        NodeFactory(site=cloud, team=research, name=f"idle-a-{seed}"),
        NodeFactory(site=onprem, team=infer, name=f"idle-b-{seed}", lifecycle=NodeLifecycle.OWNED),
    ]
    rows = []
    for d in range(days):
        day = start + timedelta(days=d)
        for i, (site, team, gpu_model, lifecycle) in enumerate(
            [
                (cloud, research, "NVIDIA H100 80GB HBM3", NodeLifecycle.ON_DEMAND),
                (cloud, infer, "NVIDIA A100-SXM4-40GB", NodeLifecycle.SPOT),
                (onprem, infer, "NVIDIA H100 80GB HBM3", NodeLifecycle.OWNED),
                (onprem, None, "NVIDIA L4", NodeLifecycle.OWNED),
            ]
        ):
            compute = Decimal(f"{100 + 37 * d + 11 * i + seed}.123457")
            energy = Decimal("0") if site is cloud else Decimal(f"{5 + d}.250001")
            rows.append(
                LedgerDay(
                    day=day,
                    provider=site.provider,
                    provider_kind=site.provider.kind,
                    site=site,
                    team=team,
                    gpu_model=gpu_model,
                    lifecycle=lifecycle,
                    nodes=2,
                    compute_usd=compute,
                    energy_kwh=energy * 4,
                    energy_usd=energy,
                    gpu_hours=Decimal(48),
                    idle_gpu_hours=Decimal(6 + i),
                    idle_usd=compute / 8,
                    total_usd=compute + energy,
                )
            )
    LedgerDay.objects.bulk_create(rows)
    entries = []
    for n, node in enumerate(nodes):
        for h in range(3):
            hour = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(hours=h)
            entries.append(
                LedgerEntry(
                    node=node,
                    hour=hour,
                    provider=node.site.provider,
                    provider_kind=node.site.provider.kind,
                    site=node.site,
                    team=node.team,
                    gpu_model="NVIDIA H100 80GB HBM3",
                    lifecycle=node.lifecycle,
                    gpu_count=8,
                    active_s=3600,
                    rate_usd_per_h=Decimal("98.32"),
                    compute_usd=Decimal("98.32"),
                    energy_kwh=Decimal(0),
                    energy_usd=Decimal(0),
                    gpu_hours=Decimal(8),
                    idle_gpu_hours=Decimal(2 + n),
                    idle_usd=Decimal("12.29") * (2 + n),
                )
            )
    LedgerEntry.objects.bulk_create(entries)
    ledger_node_days_refresh(days=[start])
    EgressRecord.objects.create(
        occurred_at=datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(hours=5),
        source="aws:us-east-1",
        destination="onprem:dc-1",
        source_provider_kind="aws",
        bytes=500 * 10**9,
        usd=Decimal("45.000000"),
        cause=EgressCause.MANUAL,
        team=research,
    )
    Budget.objects.create(team=research, monthly_usd=Decimal("10000"))
    return {"research": research, "infer": infer, "cloud": cloud, "onprem": onprem, "nodes": nodes}


def csv_rows(csv_bytes: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8"))))


def test_periods_are_previous_iso_week_and_calendar_month():
    monday_morning = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert report_period_last(period=ReportPeriod.WEEKLY, now=monday_morning) == (WEEK_START, WEEK_END)
    assert report_period_last(period=ReportPeriod.MONTHLY, now=monday_morning) == (date(2026, 10, 1), date(2026, 11, 1))
    # Right after midnight the ledger's last hour may be missing: the report waits (REPORT_SEND_DELAY).
    just_after = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert report_period_last(period=ReportPeriod.WEEKLY, now=just_after) == (date(2026, 11, 9), WEEK_START)
    assert period_containing_end(period=ReportPeriod.MONTHLY, day=date(2026, 3, 1)) == (
        date(2026, 2, 1),
        date(2026, 3, 1),
    )
    assert period_containing_end(period=ReportPeriod.MONTHLY, day=date(2026, 1, 15)) == (
        date(2025, 12, 1),
        date(2026, 1, 1),
    )
    with pytest.raises(ValueError, match="unknown report period"):
        period_containing_end(period="daily", day=date(2026, 1, 1))


@pytest.mark.django_db
def test_report_data_equals_the_spend_selectors_for_fleet_and_team():
    objs = ledger_fill(start=WEEK_START - timedelta(days=2), days=10)
    data = report_data(period_start=WEEK_START, period_end=WEEK_END)
    fleet = selectors.spend_totals(start=WEEK_START, end=WEEK_END)
    assert data.total_usd == fleet.total_usd > 0
    assert sum(r["total_usd"] for r in data.daily) == fleet.total_usd
    assert len(data.daily) == 7
    assert sum(r["total_usd"] for r in data.by_provider) == fleet.total_usd
    assert sum(r["total_usd"] for r in data.by_team) == fleet.total_usd
    assert {r["label"] for r in data.by_gpu_model} == {"H100", "A100-40GB", "L4"}
    assert data.egress_usd == Decimal(0)  # the egress record is two days before the week

    team = objs["research"]
    subscription = ReportSubscription.objects.create(name="r", recipients=["a@example.com"], team=team)
    scoped = report_data(subscription=subscription, period_start=WEEK_START, period_end=WEEK_END)
    assert scoped.scope_label == team.name
    assert scoped.total_usd == selectors.spend_totals(start=WEEK_START, end=WEEK_END, teams=[team.pk]).total_usd
    assert 0 < scoped.total_usd < data.total_usd
    assert [r["label"] for r in scoped.by_team] == [team.name]
    assert [b.label for b in scoped.budgets] == [team.name]


@pytest.mark.django_db
def test_rendered_report_has_inline_styles_chart_cid_text_and_csv_with_the_same_total():
    objs = ledger_fill(start=WEEK_START, days=7)
    data = report_data(period_start=WEEK_START, period_end=WEEK_END)
    rendered = report_render(data)
    total = data.total_usd.quantize(Decimal("0.01"))
    assert rendered.total_usd == total
    shown = f"{total:,}"
    assert shown in rendered.subject and shown in rendered.html and shown in rendered.text
    assert "<style" not in rendered.html and "class=" not in rendered.html
    assert f'src="cid:{CHART_CID}"' in rendered.html
    assert rendered.chart_png.startswith(PNG_MAGIC)
    for needle in (
        "Spend by provider",
        "Spend by team",
        "Spend by GPU model",
        "Egress by route",
        "Budgets",
        "Top idle nodes",
    ):
        assert needle in rendered.html, needle
    assert "aws:us-east-1" in rendered.html and "aws:us-east-1 -> onprem:dc-1" in rendered.text
    assert objs["nodes"][1].name in rendered.html and objs["nodes"][1].name in rendered.text
    rows = csv_rows(rendered.csv_bytes)
    total_row = next(r for r in rows if r["section"] == "total")
    assert Decimal(total_row["total_usd"]) == total
    assert sum(Decimal(r["total_usd"]) for r in rows if r["section"] == "day") == pytest.approx(
        total, abs=Decimal("0.05")
    )
    assert {r["key"] for r in rows if r["section"] == "idle_node"} == {n.name for n in objs["nodes"]}
    egress = [r for r in rows if r["section"] == "egress"]
    assert egress[0]["egress_bytes"] == str(500 * 10**9) and egress[0]["total_usd"] == "45.00"
    assert next(r for r in rows if r["section"] == "budget")["state"] in {"ok", "warning", "over", "forecast-over"}


@pytest.mark.django_db
def test_report_names_the_period_by_its_last_day_and_sizes_in_decimal_units():
    """The week [23 Nov, 30 Nov) reads "23 Nov to 29 Nov" in the subject, body and file name, as the Reports page
    shows it; the 500 GB egress record (500 × 10**9 bytes, billed per GB) reads "500 GB", not "465.7 GB"."""
    ledger_fill(start=date(2026, 11, 23), days=7)
    data = report_data(period_start=date(2026, 11, 23), period_end=date(2026, 11, 30))
    rendered = report_render(data)
    assert "week 2026-W48 (23 Nov to 29 Nov 2026)" in rendered.subject
    assert "2026-11-23 to 2026-11-29 (both days included, UTC)" in rendered.text
    assert "2026-11-23 to 2026-11-29 (both days included, UTC)" in rendered.html
    assert "(as of 2026-11-29)" in rendered.html
    assert "to 2026-11-30" not in rendered.text + rendered.html and "exclusive" not in rendered.text
    assert rendered.filename == "fleetdeck-cost-2026-11-23-2026-11-29.csv"
    assert "aws:us-east-1 -> onprem:dc-1: 500 GB, $45.00" in rendered.text
    assert ">500 GB</td>" in rendered.html and "465.7" not in rendered.html


@pytest.mark.django_db
def test_empty_period_renders_without_error():
    rendered = report_render(report_data(period_start=WEEK_START, period_end=WEEK_END))
    assert rendered.total_usd == Decimal("0.00")
    assert "No spend in this period." in rendered.html
    assert rendered.chart_png.startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="must end after"):
        report_data(period_start=WEEK_END, period_end=WEEK_START)
