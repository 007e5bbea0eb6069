"""The ledger's cost truth (billing/ledger.py): kgCO2e per node-hour, PUE in the cloud, broken capacity $ and the
split of sliced (MIG, time-sliced) GPUs across teams — each hand-checked, every figure derived in the test."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D

import pytest

from billing import selectors
from billing.ledger import ledger_compute
from billing.models import GridIntensity, GridIntensityHour, LedgerDay, LedgerNodeDay, LedgerShare, ProviderPue
from fleet.choices import GpuSliceKind, HealthEventKind
from fleet.models import GpuSlice, HealthEvent
from tests.billing.test_ledger import NOW, at, node_with_gpus, onprem_node, p5_price, rollup_insert, rows
from tests.factories import ProjectFactory, TeamFactory

pytestmark = pytest.mark.django_db

__all__ = ["onprem_node"]  # the fixture, used here by name


def test_onprem_node_day_kgco2e_hand_checked(onprem_node):
    """One on-prem node-day: 8 × H100 at a site with PUE 1.4 and an operator intensity of 236 gCO2e/kWh.

    Every hour of 2 March each GPU uses 500 Wh: 8 × 0.5 kWh = 4 kWh × PUE 1.4 = 5.6 kWh; × 236 g = 1,321.6 g
    = 1.3216 kgCO2e. At 13:00 an imported hourly value of 100 g/kWh beats the site's: 5.6 × 0.1 = 0.56 kg.
    The day: 23 × 1.3216 + 0.56 = 30.3968 + 0.56 = 30.9568 kgCO2e, on the daily and per-node daily sums alike.
    """
    site = onprem_node.site
    site.carbon_g_per_kwh = D("236")
    site.save()
    GridIntensityHour.objects.create(site=site, hour=at(2, 13), g_per_kwh=D("100"))
    for hour in range(24):
        rollup_insert(onprem_node, at(2, hour), energy_wh=500.0)

    ledger_compute(start=at(2, 0), end=at(3, 0), now=NOW)

    by_hour = {row.hour.hour: row for row in rows(onprem_node)}
    assert (by_hour[12].energy_kwh, by_hour[12].co2e_kg) == (D("5.6"), D("1.3216"))
    assert by_hour[13].co2e_kg == D("0.56")
    assert LedgerDay.objects.get(day=date(2026, 3, 2)).co2e_kg == D("30.9568")
    assert LedgerNodeDay.objects.get(day=date(2026, 3, 2), node=onprem_node).co2e_kg == D("30.9568")
    totals = selectors.spend_totals(start=date(2026, 3, 2), end=date(2026, 3, 3))
    assert totals.co2e_kg == D("30.9568")


def test_cloud_energy_takes_the_providers_pue_and_the_regions_intensity():
    """A p5.48xlarge in us-east-1, 8 GPUs × 700 Wh = 5.6 kWh measured. AWS's published PUE 1.15: 6.44 kWh
    (energy $ stays 0: it is in the price). The shipped us-east-1 figure, 379 g/kWh: 6.44 × 0.379 = 2.44076 kg.
    The site's operator value (100 g/kWh) beats the region's: 6.44 × 0.1 = 0.644 kg."""
    p5_price(date(2026, 1, 1), "98.32")
    ProviderPue.objects.create(provider_kind="aws", pue=D("1.15"), source="test")
    GridIntensity.objects.create(provider_kind="aws", region="us-east-1", g_per_kwh=D("379"), source="test")
    node = node_with_gpus(launched_at=at(1, 0))
    rollup_insert(node, at(2, 10), energy_wh=700.0)

    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    (row,) = rows(node)
    assert (row.energy_kwh, row.energy_usd, row.co2e_kg) == (D("6.44"), D(0), D("2.44076"))

    node.site.carbon_g_per_kwh = D("100")
    node.site.save()
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    assert rows(node)[0].co2e_kg == D("0.644")


def test_no_intensity_is_an_unknown_not_a_zero(onprem_node):
    """A site with no intensity anywhere: the entry's kgCO2e is NULL (unknown), the day's sum counts it as 0."""
    rollup_insert(onprem_node, at(2, 10), energy_wh=500.0)
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    assert rows(onprem_node)[0].co2e_kg is None
    assert LedgerDay.objects.get().co2e_kg == D(0)


def test_broken_capacity_hand_checked():
    """A p5.48xlarge (8 × H100, $98.32/h on demand: $12.29 per GPU-hour) from 10:00 to 13:00 on 2 March.

    - GPU 2: an XID at 10:30, another at 10:45 (the same outage: the union counts), resolved at 12:15.
    - GPU 3: ECC single-bit errors from 10:00, never resolved: corrected by the GPU, not broken capacity.
    - GPU 4: lost at 11:30, still open.
    10:00  GPU 2 broken 30 min = 0.5 GPU-h → broken $ = 98.32 × 0.5 / 8 = 6.145
    11:00  GPU 2 the whole hour (1) + GPU 4 from 11:30 (0.5) = 1.5 GPU-h → 98.32 × 1.5 / 8 = 18.435
    12:00  GPU 2 until 12:15 (0.25) + GPU 4 all hour (1) = 1.25 GPU-h → 98.32 × 1.25 / 8 = 15.3625
    The day: 3.25 broken GPU-hours, $39.9425 broken capacity, inside compute $ (3 × 98.32 = 294.96).
    """
    p5_price(date(2026, 1, 1), "98.32")
    node = node_with_gpus(launched_at=at(2, 10), ended_at=at(2, 13))
    gpus = {gpu.index: gpu for gpu in node.gpus.all()}

    def event(index: int, kind: str, occurred: datetime, resolved: datetime | None = None, code: int = 79):
        HealthEvent.objects.create(
            gpu=gpus[index], node=node, kind=kind, occurred_at=occurred, resolved_at=resolved, code=code
        )

    event(2, HealthEventKind.XID, at(2, 10, 30), at(2, 12, 15))
    event(2, HealthEventKind.XID, at(2, 10, 45), at(2, 12, 15), code=48)
    event(3, HealthEventKind.ECC_SBE, at(2, 10), code=12)
    event(4, HealthEventKind.GPU_LOST, at(2, 11, 30))

    ledger_compute(start=at(2, 0), end=at(3, 0), now=NOW)

    assert [(r.hour.hour, r.broken_gpu_hours, r.broken_usd) for r in rows(node)] == [
        (10, D("0.5"), D("6.145")),
        (11, D("1.5"), D("18.435")),
        (12, D("1.25"), D("15.3625")),
    ]
    day = LedgerDay.objects.get()
    assert (day.broken_gpu_hours, day.broken_usd, day.compute_usd) == (D("3.25"), D("39.9425"), D("294.96"))
    assert LedgerNodeDay.objects.get().broken_usd == D("39.9425")


def test_broken_hours_never_exceed_the_gpu_hours():
    """A 1-GPU node lost for the whole hour twice over (two open events): at most its 1 GPU-hour is broken."""
    p5_price(date(2026, 1, 1), "98.32")
    node = node_with_gpus(gpus=1, launched_at=at(1, 0))
    gpu = node.gpus.get()
    for occurred in (at(1, 1), at(1, 2)):
        HealthEvent.objects.create(gpu=gpu, node=node, kind=HealthEventKind.GPU_LOST, occurred_at=occurred)
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    (row,) = rows(node)
    assert (row.gpu_hours, row.broken_gpu_hours, row.broken_usd) == (D(1), D(1), row.compute_usd)


def test_mig_gpu_split_across_two_teams_hand_checked(onprem_node):
    """One MIG-partitioned H100 of an 8-GPU on-prem node (the node's team: Platform) at $11.986301/h, energy 8 ×
    700 Wh × PUE 1.4 = 7.84 kWh × $0.12 = $0.9408, on a 236 g/kWh grid: 7.84 × 0.236 = 1.85024 kgCO2e.

    GPU 0 holds 3g.40gb (Vision), 2g.20gb (Speech) and one 2g.20gb nobody holds, of 7 units; a GPU is 1/8 of
    the node-hour, so:
    - Vision: 3/7 × 1/8 = 3/56 → compute 11.986301 × 3/56 = 0.6421232… → 0.642123; energy 7.84 × 3/56 = 0.42 kWh,
      $0.0504; 1.85024 × 3/56 = 0.099120 kg; 3/7 GPU-h, no idle.
    - Speech: 2/56 → compute 0.4280822… → 0.428082; 0.28 kWh, $0.0336; 0.066080 kg; 2/7 GPU-h.
    - Platform: the 7 whole GPUs and the unheld 2g.20gb: 51/56 → compute 10.9160955… → 10.916096; 7.14 kWh,
      $0.8568; 1.68504 kg; 8 − 5/7 = 7.285714 GPU-h of which the unheld slice, 2/7 = 0.285714 GPU-h, is
      idle: idle $ = 11.986301 × (2/7) / 8 = 0.4280822… → 0.428082.
    The shares add up to the node-hour to the micro-dollar (0.642123 + 0.428082 + 10.916096 = 11.986301).
    """
    onprem_node.site.carbon_g_per_kwh = D("236")
    onprem_node.site.save()
    platform = onprem_node.team
    vision, speech = TeamFactory(name="Vision"), TeamFactory(name="Speech")
    vision_project = ProjectFactory(team=vision)
    gpu0 = onprem_node.gpus.get(index=0)
    for name, units, team, project in (
        ("3g.40gb#1", 3, vision, vision_project),
        ("2g.20gb#5", 2, speech, None),
        ("2g.20gb#6", 2, None, None),
    ):
        GpuSlice.objects.create(
            gpu=gpu0, kind=GpuSliceKind.MIG, name=name, units=units, of_units=7, team=team, project=project
        )
    rollup_insert(onprem_node, at(2, 10), energy_wh=700.0)

    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)

    (entry,) = rows(onprem_node)
    assert (entry.compute_usd, entry.energy_usd, entry.co2e_kg) == (D("11.986301"), D("0.9408"), D("1.85024"))
    shares = {
        share.team_id: share for share in LedgerShare.objects.filter(entry=entry).select_related("team", "project")
    }
    assert set(shares) == {platform.pk, vision.pk, speech.pk}
    figures = {
        team_id: (s.compute_usd, s.energy_kwh, s.energy_usd, s.co2e_kg, s.gpu_hours, s.idle_gpu_hours, s.idle_usd)
        for team_id, s in shares.items()
    }
    assert figures[vision.pk] == (D("0.642123"), D("0.42"), D("0.0504"), D("0.09912"), D("0.428571"), 0, 0)
    assert figures[speech.pk] == (D("0.428082"), D("0.28"), D("0.0336"), D("0.06608"), D("0.285714"), 0, 0)
    assert figures[platform.pk] == (
        D("10.916096"),
        D("7.14"),
        D("0.8568"),
        D("1.68504"),
        D("7.285714"),
        D("0.285714"),
        D("0.428082"),
    )
    assert shares[vision.pk].project_id == vision_project.pk and shares[platform.pk].project == onprem_node.project
    assert sum(s.compute_usd for s in shares.values()) == entry.compute_usd

    by_team = {
        row["key"]: row
        for row in selectors.spend_by(dimension="team", start=date(2026, 3, 2), end=date(2026, 3, 3), teams=None)
    }
    assert by_team[vision.pk]["total_usd"] == D("0.692523")  # 0.642123 + 0.0504
    assert by_team[speech.pk]["total_usd"] == D("0.461682")  # 0.428082 + 0.0336
    assert by_team[platform.pk]["idle_usd"] == D("0.428082")
    assert sum(row["total_usd"] for row in by_team.values()) == entry.compute_usd + entry.energy_usd
    # A viewer scoped to Vision sees only Vision's share of the node.
    vision_only = selectors.spend_totals(start=date(2026, 3, 2), end=date(2026, 3, 3), teams=[vision.pk])
    assert (vision_only.total_usd, vision_only.gpu_hours) == (D("0.692523"), D("0.428571"))


def test_time_sliced_gpu_without_holders_is_all_the_nodes_own(onprem_node):
    """Four time-sliced replicas of GPU 0, none held: the node's team keeps the whole hour, and GPU 0's hour (1 of
    8 GPU-hours) is idle $: 11.986301 / 8 = 1.4982876… → 1.498288."""
    gpu0 = onprem_node.gpus.get(index=0)
    for replica in range(4):
        GpuSlice.objects.create(gpu=gpu0, kind=GpuSliceKind.TIME_SLICE, name=f"replica-{replica}", units=1, of_units=4)
    rollup_insert(onprem_node, at(2, 10), energy_wh=700.0)
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    (share,) = LedgerShare.objects.all()
    assert (share.team_id, share.compute_usd, share.idle_gpu_hours, share.idle_usd) == (
        onprem_node.team_id,
        D("11.986301"),
        D(1),
        D("1.498288"),
    )


def test_slices_are_recomputed_not_doubled(onprem_node):
    """Recomputing the hour replaces its shares (and a slice handed to another team moves its share)."""
    other = TeamFactory()
    slice_ = GpuSlice.objects.create(
        gpu=onprem_node.gpus.get(index=0), kind=GpuSliceKind.MIG, name="7g.80gb#0", units=7, of_units=7, team=other
    )
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    assert LedgerShare.objects.count() == 2
    assert LedgerShare.objects.get(team=other).compute_usd == D("1.498288")  # 11.986301 / 8
    slice_.team = None
    slice_.save()
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    assert list(LedgerShare.objects.values_list("team_id", flat=True)) == [onprem_node.team_id]
    assert LedgerDay.objects.get().total_usd == D("11.986301")


def test_ledger_api_shows_the_new_figures_and_the_shares(onprem_node, admin_api, django_assert_max_num_queries):
    """GET /api/v1/ledger/ carries kgCO2e, broken and covered $, and a sliced node-hour's shares (prefetched:
    the query count does not grow with the rows)."""
    onprem_node.site.carbon_g_per_kwh = D("236")
    onprem_node.site.save()
    vision = TeamFactory()
    gpu0 = onprem_node.gpus.get(index=0)
    GpuSlice.objects.create(gpu=gpu0, kind=GpuSliceKind.MIG, name="3g.40gb#1", units=3, of_units=7, team=vision)
    for hour in (10, 11, 12):
        rollup_insert(onprem_node, at(2, hour), energy_wh=700.0)
    HealthEvent.objects.create(
        gpu=onprem_node.gpus.get(index=5), node=onprem_node, kind=HealthEventKind.XID, occurred_at=at(2, 12), code=79
    )
    ledger_compute(start=at(2, 10), end=at(2, 13), now=NOW)
    url = "/api/v1/ledger/"
    admin_api.get(url)
    with django_assert_max_num_queries(7):
        results = admin_api.get(url, {"node": onprem_node.pk}).json()["results"]
    newest = results[0]
    assert newest["hour"] == "2026-03-02T12:00:00Z"
    assert (newest["co2e_kg"], newest["broken_gpu_hours"], newest["broken_usd"]) == ("1.850240", "1.000000", "1.498288")
    assert newest["covered_usd"] == "0.000000" and newest["commitment"] is None
    assert {share["team"]: share["compute_usd"] for share in newest["shares"]} == {
        vision.pk: "0.642123",
        onprem_node.team_id: "11.344178",  # 11.986301 × 53/56 = 11.34417773…
    }
