"""The demo after ``seed_demo``: the overview's 24 h charts are full and follow a daily load cycle that agrees
with the hourly roll-ups, and exactly one team (research) is near its budget, on any day of a month."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.ledger import ledger_backfill
from billing.selectors import budget_status_list, month_start_of
from dashboard.views import OVERVIEW_CHART_STEP_S, _overview_data
from devtools.demo.fleet import demo_fleet_seed
from devtools.demo.history import demo_fleet_minute_seed
from devtools.demo.seed import demo_history_billing_and_scheduler_seed
from fleet.choices import ProviderKind
from fleet.telemetry.series import fleet_series, series_window

pytestmark = pytest.mark.django_db
KINDS = {k.value for k in ProviderKind}


def _hourly_means(points: list[dict]) -> dict[int, float]:
    by_hour = defaultdict(list)
    for point in points:
        by_hour[point["t"].astimezone(UTC).hour].append(point["util_pct"])
    return {hour: sum(values) / len(values) for hour, values in by_hour.items()}


def test_overview_charts_hold_24_hours_of_a_daily_cycle_right_after_the_seed():
    call_command("seed_demo", "--nodes", "40", stdout=StringIO())
    now = timezone.now()

    # What the overview draws: one dataset per provider kind, a point for every 10-minute step of the 24 h.
    data = _overview_data()
    for chart in ("util_chart", "power_chart"):
        datasets = data[chart]["datasets"]
        assert {d["label"] for d in datasets} == {k.label for k in ProviderKind}
        assert len(data[chart]["labels"]) >= 144
        for dataset in datasets:
            assert sum(v is not None for v in dataset["data"]) >= 144, (chart, dataset["label"])

    series = fleet_series(window=series_window(start=None, end=None, step_s=OVERVIEW_CHART_STEP_S))
    assert set(series) == KINDS
    for kind, points in series.items():
        assert len(points) >= 144, kind
        assert points[0]["t"] <= now - timedelta(hours=23, minutes=50), kind
        assert points[-1]["t"] >= now - timedelta(minutes=20), kind  # up to the minute the live series takes over
        assert all(p["util_pct"] is not None and p["power_w"] > 0 and p["gpus"] > 0 for p in points), kind
        means = _hourly_means(points)
        assert len(means) == 24
        # A daily cycle, not noise: a night trough around 03:00 UTC, a peak around 15:00 UTC.
        assert max(means.values()) - min(means.values()) >= 20, (kind, means)
        assert min(means, key=means.get) in {2, 3, 4}, (kind, means)
        assert max(means, key=means.get) in {14, 15, 16}, (kind, means)
        # Power follows utilisation: the busiest hour draws more than the quietest.
        power = defaultdict(list)
        for p in points:
            power[p["t"].astimezone(UTC).hour].append(p["power_w"])
        busiest, quietest = max(means, key=means.get), min(means, key=means.get)
        assert min(power[busiest]) > max(power[quietest]), kind


def test_the_minute_series_agrees_with_the_hourly_rollups_the_node_charts_read():
    call_command("seed_demo", "--nodes", "40", stdout=StringIO())
    series = fleet_series(window=series_window(start=None, end=None, step_s=3600))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.kind, h.hour, AVG(h.util_avg), SUM(h.power_avg_w)
            FROM fleet_gpu_hour h JOIN fleet_gpu g ON g.id = h.gpu_id JOIN fleet_node n ON n.id = g.node_id
            JOIN fleet_site s ON s.id = n.site_id JOIN fleet_provider p ON p.id = s.provider_id
            WHERE h.hour >= now() - interval '22 hours' GROUP BY 1, 2
            """
        )
        rollups = {(kind, hour): (float(util), float(power)) for kind, hour, util, power in cursor.fetchall()}
    assert len(rollups) >= 3 * 19  # the hourly history stops two hours ago
    compared = 0
    for kind, points in series.items():
        for point in points:
            if (kind, point["t"]) in rollups:
                util, power = rollups[(kind, point["t"])]
                # The same model: hourly means within a few points (per-GPU noise of ± 5 % averages out).
                assert abs(point["util_pct"] - util) <= 4, (kind, point["t"], point["util_pct"], util)
                assert abs(point["power_w"] - power) <= 0.05 * power, (kind, point["t"], point["power_w"], power)
                compared += 1
    assert compared == len(rollups)


def test_the_minute_seed_never_overwrites_live_minutes_and_fills_only_the_gaps():
    demo_fleet_seed(nodes=10, seed=3)
    now = timezone.now()
    live = now.replace(second=0, microsecond=0) - timedelta(minutes=30)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fleet_fleet_minute (minute, provider_kind, gpus, util_avg, power_w) "
            "VALUES (%s, 'aws', 7, 12.5, 1234)",
            [live],
        )
        written = demo_fleet_minute_seed(hours=1, now=now)
        assert written == 60 * len(KINDS) - 1  # every minute of the hour but the live one
        assert demo_fleet_minute_seed(hours=1, now=now) == 0
        cursor.execute(
            "SELECT gpus, util_avg, power_w FROM fleet_fleet_minute WHERE minute = %s AND provider_kind = 'aws'", [live]
        )
        assert cursor.fetchone() == (7, 12.5, 1234.0)
        cursor.execute("SELECT max(minute) FROM fleet_fleet_minute")
        assert cursor.fetchone()[0] == now.replace(second=0, microsecond=0) - timedelta(minutes=1)


def _previous_month_at(day: int) -> datetime:
    """14:00 UTC on ``day`` of the month before this one (in the past, and with a day after it in the past)."""
    first = month_start_of(timezone.now().astimezone(UTC).date())
    previous = month_start_of(first - timedelta(days=1))
    return datetime.combine(previous.replace(day=day), datetime.min.time(), UTC) + timedelta(hours=14)


@pytest.mark.parametrize("day", [2, 28], ids=["early-in-the-month", "late-in-the-month"])
def test_only_research_is_near_its_budget_on_any_day_of_the_month(day):
    now = _previous_month_at(day)
    today = now.date()
    demo_fleet_seed(nodes=40, seed=7)
    demo_history_billing_and_scheduler_seed(log=lambda line: None, now=now)

    seeded = {s.budget.team.slug: s for s in budget_status_list(month=today, today=today)}
    assert set(seeded) == {"research", "inference", "platform", "data"}
    research = seeded.pop("research")
    assert 80 <= research.pct < 100, research  # past the 80 % alert, under the limit
    assert research.thresholds_crossed == [80]
    for slug, status in seeded.items():
        assert status.pct < 80 and status.forecast_pct < 80 and status.state == "ok", (slug, status)
        if day == 28:  # a believable budget, not a blank cheque (early on, a date's forecast runs low)
            assert status.forecast_pct >= 45, (slug, status)

    # The live ledger adds a day's spend: the healthy teams stay healthy, and late in a month research stays
    # under its limit (early in one it goes over within the day: see demo_budget_tighten).
    next_day = today + timedelta(days=1)
    ledger_backfill(start=today, end=next_day, now=now + timedelta(days=1))
    later = {s.budget.team.slug: s for s in budget_status_list(month=today, today=next_day)}
    for slug in seeded:
        assert later[slug].pct < 80 and later[slug].forecast_pct < 80, (slug, later[slug])
    if day == 28:
        assert 80 <= later["research"].pct < 100, later["research"]


def test_budget_is_sized_from_complete_days_not_the_first_hours_of_a_month():
    """On the 1st at 02:00, two hours of spend made every demo budget about a tenth of a month's spend."""
    now = datetime.combine(_previous_month_at(2).date() - timedelta(days=1), datetime.min.time(), UTC)
    now += timedelta(hours=2)
    assert now.day == 1
    demo_fleet_seed(nodes=40, seed=7)
    demo_history_billing_and_scheduler_seed(log=lambda line: None, now=now)
    today: date = now.date()
    statuses = {s.budget.team.slug: s for s in budget_status_list(month=today, today=today)}
    # A day more of spend: nobody is over (the old seed put every team far over by then).
    ledger_backfill(start=today, end=today + timedelta(days=1), now=now + timedelta(days=1))
    later = {s.budget.team.slug: s for s in budget_status_list(month=today, today=today + timedelta(days=1))}
    for slug, status in statuses.items():
        assert status.pct < 80, (slug, status)  # research's first hours are under its alert (one day's budget)
        assert later[slug].pct <= 100, (slug, later[slug])
