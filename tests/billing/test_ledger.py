"""The hourly cost ledger (billing/ledger.py): hand-checked dollars, partial hours, idempotency, daily sums."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from moto import mock_aws

from billing.choices import PriceSource, PurchaseOption
from billing.ledger import ledger_backfill, ledger_compute, reconciliation_list
from billing.models import BilledCost, Discount, InstancePrice, LedgerDay, LedgerEntry, OnPremCostModel
from billing.tasks.ledger import ledger_backfill as ledger_backfill_task
from billing.tasks.ledger import ledger_update
from devtools.demo.billing import demo_ledger_seed
from fleet.choices import NodeLifecycle, NodeState
from fleet.inventory.sync import inventory_sync
from fleet.models import Node
from tests.factories import GPUFactory, NodeFactory, OnPremSiteFactory, ProjectFactory, ProviderFactory, SiteFactory

pytestmark = pytest.mark.django_db

H100_NVML = "NVIDIA H100 80GB HBM3"
NOW = datetime(2026, 3, 10, tzinfo=UTC)  # well after every hour computed here


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def node_with_gpus(*, gpus: int = 8, model: str = H100_NVML, **kwargs):
    node = NodeFactory(**kwargs)
    for index in range(gpus):
        GPUFactory(node=node, index=index, model=model)
    return node


def rollup_insert(node, hour: datetime, *, energy_wh: float, idle_s: int = 0, idle_gpus: int | None = None) -> None:
    """One fleet_gpu_hour row per GPU of the node: ``energy_wh`` each, ``idle_s`` on the first ``idle_gpus``."""
    ids = list(node.gpus.order_by("index").values_list("pk", flat=True))
    idle_gpus = len(ids) if idle_gpus is None else idle_gpus
    with connection.cursor() as cursor:
        for position, gpu_id in enumerate(ids):
            cursor.execute(
                "INSERT INTO fleet_gpu_hour (hour, gpu_id, energy_wh, samples, idle_s, minutes, util_1m, power_1m_w,"
                " mem_1m_mib, temp_1m_c) VALUES (%s, %s, %s, 240, %s, '{}', '{}', '{}', '{}', '{}')",
                [hour, gpu_id, energy_wh, idle_s if position < idle_gpus else 0],
            )


def rows(node) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(node=node).order_by("hour"))


def p5_price(effective_from: date, on_demand: str, spot: str | None = None, source=PriceSource.CATALOGUE):
    return InstancePrice.objects.create(
        provider_kind="aws",
        region="us-east-1",
        instance_type="p5.48xlarge",
        gpu_model="H100",
        gpu_count=8,
        on_demand_usd_per_h=Decimal(on_demand),
        spot_usd_per_h=Decimal(spot) if spot else None,
        effective_from=effective_from,
        source=source,
    )


@pytest.fixture
def onprem_node():
    """8 × H100 owned since January at a site paying $0.12/kWh with PUE 1.4, costed by a site-wide model."""
    site = OnPremSiteFactory(electricity_usd_per_kwh=Decimal("0.12000"), pue=Decimal("1.40"))
    OnPremCostModel.objects.create(
        site=site,
        purchase_usd_per_gpu=Decimal("37500.00"),  # a $300,000 server / 8 GPUs
        amortisation_months=48,
        ops_usd_per_gpu_year=Decimal("3750.00"),
        effective_from=date(2026, 1, 1),
    )
    project = ProjectFactory()
    return node_with_gpus(
        site=site,
        lifecycle=NodeLifecycle.OWNED,
        instance_type="",
        external_id="",
        team=project.team,
        project=project,
        launched_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_onprem_node_hand_checked(onprem_node):
    # $/GPU-h = 37,500 / (48 months × 730 h) + 3,750 / 8,760 h = 37,500/35,040 + 15,000/35,040 = 52,500/35,040
    #         = 1.498287671232876…; the node: × 8 GPUs = 420,000/35,040 = 11.986301369863013… $/h → 11.986301.
    # 10:00  8 GPUs × 700 Wh = 5.6 kWh × PUE 1.4 = 7.84 kWh × $0.12 = $0.9408; no idle GPU.
    # 11:00  8 GPUs × 350 Wh = 2.8 kWh × 1.4 = 3.92 kWh × $0.12 = $0.4704; 2 GPUs idle all hour = 2 idle GPU-h,
    #        idle $ = 11.98630137 × 2/8 = 2.99657534… → 2.996575.
    # 12:00  no roll-ups (the agent was down): the hardware still costs its amortisation, energy 0.
    rollup_insert(onprem_node, at(2, 10), energy_wh=700.0)
    rollup_insert(onprem_node, at(2, 11), energy_wh=350.0, idle_s=3600, idle_gpus=2)

    report = ledger_compute(start=at(2, 10), end=at(2, 13), now=NOW)

    assert report.rows == 3 and report.unpriced_count == 0
    h10, h11, h12 = rows(onprem_node)
    for row in (h10, h11, h12):
        assert row.rate_usd_per_h == Decimal("11.986301")
        assert row.compute_usd == Decimal("11.986301")
        assert row.active_s == 3600 and row.gpu_count == 8 and row.gpu_hours == Decimal("8")
        assert row.gpu_model == H100_NVML and row.lifecycle == NodeLifecycle.OWNED and row.priced
        assert row.team_id == onprem_node.team_id and row.project_id == onprem_node.project_id
    assert (h10.energy_kwh, h10.energy_usd, h10.idle_gpu_hours, h10.idle_usd) == (
        Decimal("7.84"),
        Decimal("0.9408"),
        Decimal(0),
        Decimal(0),
    )
    assert (h11.energy_kwh, h11.energy_usd, h11.idle_gpu_hours, h11.idle_usd) == (
        Decimal("3.92"),
        Decimal("0.4704"),
        Decimal(2),
        Decimal("2.996575"),
    )
    assert (h12.energy_kwh, h12.energy_usd) == (Decimal(0), Decimal(0))
    # The day: 3 × 11.986301 compute + 0.9408 + 0.4704 energy = 35.958903 + 1.4112 = 37.370103.
    day = LedgerDay.objects.get(day=date(2026, 3, 2))
    assert day.total_usd == Decimal("37.370103")
    assert (day.nodes, day.gpu_hours, day.energy_kwh) == (1, Decimal(24), Decimal("11.76"))


def test_node_cost_model_beats_site_models(onprem_node):
    # The site's H100 model would say $1/GPU-h; the node's own $2/GPU-h wins: (17,520/(24×730) + 0) × 8 = $8/h.
    OnPremCostModel.objects.create(
        site=onprem_node.site,
        gpu_model=H100_NVML,
        purchase_usd_per_gpu=Decimal("8760.00"),
        amortisation_months=12,
        ops_usd_per_gpu_year=Decimal(0),
        effective_from=date(2026, 1, 1),
    )
    ledger_compute(start=at(2, 0), end=at(2, 1), now=NOW)
    assert rows(onprem_node)[0].compute_usd == Decimal("8")  # the site's H100 model: 8,760/(12×730) × 8 GPUs
    OnPremCostModel.objects.create(
        node=onprem_node,
        purchase_usd_per_gpu=Decimal("35040.00"),
        amortisation_months=24,
        ops_usd_per_gpu_year=Decimal(0),
        effective_from=date(2026, 3, 1),
    )
    ledger_compute(start=at(2, 0), end=at(2, 1), now=NOW)
    assert rows(onprem_node)[0].compute_usd == Decimal("16")  # 35,040/(24×730) = $2/GPU-h × 8


def test_cloud_price_change_at_midnight():
    # An on-demand p5.48xlarge (8 × H100) from 22:00 on 1 March to 02:00 on 2 March; the catalogue price drops
    # from $98.32/h to $55.04/h on 2 March: 2 h × 98.32 + 2 h × 55.04 = 196.64 + 110.08 = $306.72.
    p5_price(date(2026, 1, 1), "98.32")
    p5_price(date(2026, 3, 2), "55.04")
    node = node_with_gpus(launched_at=at(1, 22), ended_at=at(2, 2))
    rollup_insert(node, at(1, 22), energy_wh=650.0)  # cloud: measured energy is shown, its $ is in the price

    report = ledger_compute(start=at(1, 0), end=at(3, 0), now=NOW)

    assert report.rows == 4
    assert [(r.hour, r.compute_usd) for r in rows(node)] == [
        (at(1, 22), Decimal("98.32")),
        (at(1, 23), Decimal("98.32")),
        (at(2, 0), Decimal("55.04")),
        (at(2, 1), Decimal("55.04")),
    ]
    first = rows(node)[0]
    assert (first.energy_kwh, first.energy_usd) == (Decimal("5.2"), Decimal(0))  # 8 × 650 Wh, × 1 in the cloud
    assert LedgerEntry.objects.aggregate(total=Sum("compute_usd"))["total"] == Decimal("306.72")
    days = dict(LedgerDay.objects.values_list("day", "total_usd"))
    assert days == {date(2026, 3, 1): Decimal("196.64"), date(2026, 3, 2): Decimal("110.08")}


def test_override_beats_a_later_catalogue_price():
    p5_price(date(2026, 2, 1), "90.00", source=PriceSource.OVERRIDE)
    p5_price(date(2026, 3, 1), "98.32")
    node = node_with_gpus(launched_at=at(1, 0))
    ledger_compute(start=at(2, 0), end=at(2, 1), now=NOW)
    assert rows(node)[0].compute_usd == Decimal("90")


def test_spot_node_pays_the_spot_price_and_only_spot_discounts():
    # g6.xlarge (1 × L4): on-demand $0.8048, spot $0.3500. The account has 10 % off on-demand (not spot):
    # the spot node pays 0.35 × 1 h = $0.35; an on-demand node of the same account 0.8048 × 0.9 = $0.72432.
    site = SiteFactory()
    InstancePrice.objects.create(
        provider_kind="aws",
        region="us-east-1",
        instance_type="g6.xlarge",
        gpu_model="L4",
        gpu_count=1,
        on_demand_usd_per_h=Decimal("0.8048"),
        spot_usd_per_h=Decimal("0.3500"),
        effective_from=date(2026, 1, 1),
    )
    Discount.objects.create(
        provider=site.provider,
        percent=Decimal(10),
        applies_to=PurchaseOption.ON_DEMAND,
        effective_from=date(2026, 1, 1),
    )
    spot = node_with_gpus(
        gpus=1,
        model="NVIDIA L4",
        site=site,
        instance_type="g6.xlarge",
        lifecycle=NodeLifecycle.SPOT,
        launched_at=at(1, 0),
    )
    on_demand = node_with_gpus(gpus=1, model="NVIDIA L4", site=site, instance_type="g6.xlarge", launched_at=at(1, 0))
    reserved = node_with_gpus(
        gpus=1,
        model="NVIDIA L4",
        site=site,
        instance_type="g6.xlarge",
        lifecycle=NodeLifecycle.RESERVED,
        launched_at=at(1, 0),
    )
    ledger_compute(start=at(2, 5), end=at(2, 6), now=NOW)
    assert rows(spot)[0].compute_usd == Decimal("0.35")
    assert rows(on_demand)[0].compute_usd == Decimal("0.72432")
    assert rows(reserved)[0].compute_usd == Decimal("0.72432")  # reserved: the on-demand price minus discounts


def test_discount_applies_only_within_its_period():
    # 10 % off everything from 2 March to 2 March: 98.32 × 0.9 = $88.488 that day, list price on the days beside.
    p5_price(date(2026, 1, 1), "98.32")
    node = node_with_gpus(launched_at=at(1, 0))
    Discount.objects.create(
        provider=node.site.provider,
        percent=Decimal(10),
        effective_from=date(2026, 3, 2),
        effective_to=date(2026, 3, 2),
    )
    ledger_compute(start=at(1, 23), end=at(3, 1), now=NOW)
    assert [r.compute_usd for r in rows(node)] == [Decimal("98.32")] + [Decimal("88.488")] * 24 + [Decimal("98.32")]
    assert rows(node)[1].rate_usd_per_h == Decimal("88.488")


def test_the_most_specific_discount_applies_not_the_sum():
    # 20 % off everything and 10 % off on-demand: on-demand pays 98.32 × 0.9 = 88.488, spot 40.00 × 0.8 = 32.
    p5_price(date(2026, 1, 1), "98.32", spot="40.00")
    on_demand = node_with_gpus(launched_at=at(1, 0))
    spot = node_with_gpus(site=on_demand.site, lifecycle=NodeLifecycle.SPOT, launched_at=at(1, 0))
    provider = on_demand.site.provider
    Discount.objects.create(provider=provider, percent=Decimal(20), effective_from=date(2026, 1, 1))
    Discount.objects.create(
        provider=provider, percent=Decimal(10), applies_to=PurchaseOption.ON_DEMAND, effective_from=date(2025, 1, 1)
    )
    ledger_compute(start=at(2, 0), end=at(2, 1), now=NOW)
    assert rows(on_demand)[0].compute_usd == Decimal("88.488")
    assert rows(spot)[0].compute_usd == Decimal("32")


def test_price_list_beats_catalogue_on_the_same_day():
    p5_price(date(2026, 3, 1), "98.32")
    p5_price(date(2026, 3, 1), "97.00", source=PriceSource.AWS_PRICE_LIST)
    node = node_with_gpus(launched_at=at(1, 0))
    ledger_compute(start=at(2, 0), end=at(2, 1), now=NOW)
    assert rows(node)[0].compute_usd == Decimal("97")


def test_partial_hours_at_launch_and_end():
    # Launched at 10:20: 2,400 s of the 10:00 hour → 55.04 × 2400/3600 = 36.693333…; ended at 12:45: 2,700 s of
    # the 12:00 hour → 55.04 × 0.75 = 41.28. GPU-hours follow: 8 × 2/3 = 5.333333, 8 × 0.75 = 6.
    p5_price(date(2026, 1, 1), "55.04")
    node = node_with_gpus(launched_at=at(2, 10, 20), ended_at=at(2, 12, 45))
    ledger_compute(start=at(2, 9), end=at(2, 14), now=NOW)
    got = [(r.hour, r.active_s, r.compute_usd, r.gpu_hours) for r in rows(node)]
    assert got == [
        (at(2, 10), 2400, Decimal("36.693333"), Decimal("5.333333")),
        (at(2, 11), 3600, Decimal("55.04"), Decimal("8")),
        (at(2, 12), 2700, Decimal("41.28"), Decimal("6")),
    ]


def test_a_restart_keeps_the_earlier_runs_hours():
    # Ran 08:00–10:00, stopped, started again at 10:30: sync moved launched_at and cleared ended_at. Recomputing
    # 08:00–11:00 keeps the first run's two hours and computes 10:00 from the new run (30 min).
    p5_price(date(2026, 1, 1), "36.00")
    node = node_with_gpus(launched_at=at(2, 8), ended_at=at(2, 10))
    ledger_compute(start=at(2, 8), end=at(2, 11), now=NOW)
    assert [(r.hour, r.active_s) for r in rows(node)] == [(at(2, 8), 3600), (at(2, 9), 3600)]
    Node.objects.filter(pk=node.pk).update(launched_at=at(2, 10, 30), ended_at=None)
    InstancePrice.objects.update(on_demand_usd_per_h=Decimal("72.00"))  # earlier hours are not overwritten
    report = ledger_compute(start=at(2, 8), end=at(2, 11), now=NOW)
    assert report.rows == 1
    got = [(r.hour, r.active_s, r.compute_usd) for r in rows(node)]
    assert got == [
        (at(2, 8), 3600, Decimal("36")),
        (at(2, 9), 3600, Decimal("36")),
        (at(2, 10), 1800, Decimal("36")),  # 72 × 1800/3600
    ]
    assert LedgerDay.objects.get(day=date(2026, 3, 2)).total_usd == Decimal(108)


def test_idle_is_capped_at_the_active_gpu_hours():
    # 1 GPU, launched at 10:30 (0.5 GPU-h), roll-up says idle all hour: idle GPU-h capped at 0.5, idle $ = compute $.
    p5_price(date(2026, 1, 1), "55.04")
    node = node_with_gpus(gpus=1, launched_at=at(2, 10, 30))
    rollup_insert(node, at(2, 10), energy_wh=100.0, idle_s=3600)
    ledger_compute(start=at(2, 10), end=at(2, 11), now=NOW)
    row = rows(node)[0]
    assert (row.idle_gpu_hours, row.idle_usd, row.compute_usd) == (Decimal("0.5"), Decimal("27.52"), Decimal("27.52"))


def test_current_hour_is_partial_and_replaced_when_recomputed():
    p5_price(date(2026, 1, 1), "36.00")
    node = node_with_gpus(launched_at=at(1, 0))
    ledger_compute(start=at(2, 10), end=at(2, 11), now=at(2, 10, 15))
    assert [(r.active_s, r.compute_usd) for r in rows(node)] == [(900, Decimal("9"))]  # 36 × 900/3600
    ledger_compute(start=at(2, 10), end=at(2, 11), now=at(2, 10, 40))
    assert [(r.active_s, r.compute_usd) for r in rows(node)] == [(2400, Decimal("24"))]
    # Hours after now get no row at all.
    ledger_compute(start=at(2, 10), end=at(2, 13), now=at(2, 10, 40))
    assert len(rows(node)) == 1


def test_recomputing_is_idempotent(onprem_node):
    p5_price(date(2026, 1, 1), "98.32")
    node_with_gpus(launched_at=at(1, 0))
    rollup_insert(onprem_node, at(2, 3), energy_wh=500.0)
    first = ledger_compute(start=at(2, 0), end=at(3, 0), now=NOW)
    snapshot = list(LedgerEntry.objects.order_by("node_id", "hour").values())
    days = list(LedgerDay.objects.order_by("pk").values("day", "total_usd", "nodes"))
    second = ledger_compute(start=at(2, 0), end=at(3, 0), now=NOW)
    assert first.rows == second.rows == 48
    again = list(LedgerEntry.objects.order_by("node_id", "hour").values())
    strip = [{k: v for k, v in row.items() if k != "id"} for row in snapshot]
    assert [{k: v for k, v in row.items() if k != "id"} for row in again] == strip
    assert list(LedgerDay.objects.order_by("pk").values("day", "total_usd", "nodes")) == days
    assert LedgerEntry.objects.count() == 48


def test_node_ids_limit_the_recomputation_but_days_stay_whole():
    p5_price(date(2026, 1, 1), "10.00")
    one = node_with_gpus(gpus=1, launched_at=at(1, 0))
    two = node_with_gpus(gpus=1, launched_at=at(1, 0))
    ledger_compute(start=at(2, 0), end=at(2, 2), now=NOW)
    InstancePrice.objects.update(on_demand_usd_per_h=Decimal("20.00"))
    report = ledger_compute(start=at(2, 0), end=at(2, 2), node_ids=[one.pk], now=NOW)
    assert report.rows == 2
    assert [r.compute_usd for r in rows(one)] == [Decimal(20)] * 2
    assert [r.compute_usd for r in rows(two)] == [Decimal(10)] * 2
    assert LedgerDay.objects.filter(day=date(2026, 3, 2)).aggregate(total=Sum("total_usd"))["total"] == Decimal(60)


def test_backfill_range_and_day_sums_equal_entry_sums(onprem_node):
    p5_price(date(2026, 1, 1), "98.32")
    p5_price(date(2026, 3, 3), "55.04")
    project = ProjectFactory()
    node_with_gpus(launched_at=at(1, 0), ended_at=at(3, 6, 30), team=project.team, project=project)
    node_with_gpus(gpus=2, instance_type="p3.2xlarge", launched_at=at(2, 12))  # no price: unpriced
    for hour in range(24):
        rollup_insert(onprem_node, at(2, hour), energy_wh=400.0 + hour, idle_s=60 * hour)

    report = ledger_backfill(start=date(2026, 3, 1), end=date(2026, 3, 3), now=NOW)

    assert report.days == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    # on-prem 72 h, the p5 24 + 24 + 7 h (6:30 → 7 rows), the unpriced node 12 + 24 h
    assert report.rows == 72 + 55 + 36 == LedgerEntry.objects.count()
    fields = ("compute_usd", "energy_kwh", "energy_usd", "gpu_hours", "idle_gpu_hours", "idle_usd")
    entries = LedgerEntry.objects.aggregate(**{f: Sum(f) for f in fields})
    days = LedgerDay.objects.aggregate(**{f: Sum(f) for f in fields}, total=Sum("total_usd"))
    assert {f: days[f] for f in fields} == entries
    assert days["total"] == entries["compute_usd"] + entries["energy_usd"]
    assert entries["idle_usd"] > 0
    # One LedgerDay row per day × dimension set: 3 on-prem, 3 p5, 2 unpriced.
    assert LedgerDay.objects.count() == 8


def test_unpriced_node_is_written_and_reported():
    node = node_with_gpus(gpus=4, instance_type="x9.nothing", launched_at=at(1, 0))
    report = ledger_compute(start=at(2, 0), end=at(2, 3), now=NOW)
    assert report.unpriced_count == 1
    assert report.unpriced_nodes == [(node.pk, node.name)]
    assert report.as_dict()["unpriced_nodes"] == [{"id": node.pk, "name": node.name}]
    assert [(r.priced, r.compute_usd, r.gpu_hours) for r in rows(node)] == [(False, Decimal(0), Decimal(4))] * 3


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger_compute(start=datetime(2026, 3, 2), end=datetime(2026, 3, 3))  # noqa: DTZ001


def test_reconciliation_lists_estimated_beside_billed(django_assert_max_num_queries):
    p5_price(date(2026, 1, 1), "100.00")
    node = node_with_gpus(launched_at=at(1, 0), ended_at=at(2, 12))
    ledger_compute(start=at(1, 0), end=at(3, 0), now=NOW)
    provider = node.site.provider
    BilledCost.objects.create(provider=provider, day=date(2026, 3, 1), usd=Decimal("2500.00"))
    BilledCost.objects.create(provider=provider, day=date(2026, 3, 2), usd=Decimal("0"))

    with django_assert_max_num_queries(2):  # two queries, however many days
        got = reconciliation_list(provider=provider, start=date(2026, 3, 1), end=date(2026, 3, 4))
    assert reconciliation_list(provider=provider.pk, start=date(2026, 3, 1), end=date(2026, 3, 4)) == got

    assert got == [
        # 24 h × $100 = 2,400 estimated; billed 2,500 → +100, 4 % of the bill.
        {
            "day": date(2026, 3, 1),
            "estimated_usd": Decimal("2400"),
            "billed_usd": Decimal("2500"),
            "difference_usd": Decimal("100"),
            "difference_pct": Decimal("4.00"),
        },
        {
            "day": date(2026, 3, 2),
            "estimated_usd": Decimal("1200"),
            "billed_usd": Decimal("0"),
            "difference_usd": Decimal("-1200"),
            "difference_pct": None,
        },
        {
            "day": date(2026, 3, 3),
            "estimated_usd": Decimal("0"),
            "billed_usd": None,
            "difference_usd": None,
            "difference_pct": None,
        },
    ]


def test_stopped_hours_cost_nothing_in_the_cloud_but_owned_hardware_still_amortises(onprem_node):
    p5_price(date(2026, 1, 1), "98.32")
    cloud = node_with_gpus(launched_at=at(1, 0), ended_at=at(1, 0) + timedelta(hours=1))
    ledger_compute(start=at(2, 0), end=at(2, 1), now=NOW)
    assert rows(cloud) == []
    assert len(rows(onprem_node)) == 1


@pytest.fixture
def ec2(monkeypatch):
    """moto's EC2 with fake credentials (the inventory sync reaches it through boto3)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-for-moto")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield boto3.client("ec2", region_name="us-east-1")


def test_inventory_sync_maintains_ended_at(ec2):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    provider = ProviderFactory(credential_ref="", regions=["us-east-1"])
    reply = ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1, InstanceType="p5.48xlarge")
    instance_id = reply["Instances"][0]["InstanceId"]
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)

    def sync(hours: int) -> Node:
        inventory_sync(provider=provider, now=t0 + timedelta(hours=hours))
        return Node.objects.get(external_id=instance_id)

    assert sync(0).ended_at is None
    ec2.stop_instances(InstanceIds=[instance_id])
    assert (sync(1).state, sync(1).ended_at) == (NodeState.STOPPED, t0 + timedelta(hours=1))
    assert sync(2).ended_at == t0 + timedelta(hours=1)  # the first sync that saw it stopped is kept
    ec2.start_instances(InstanceIds=[instance_id])
    assert sync(3).ended_at is None  # running again: billing resumes
    ec2.terminate_instances(InstanceIds=[instance_id])
    assert sync(4).ended_at == t0 + timedelta(hours=4)
    backend = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.reservations.clear()  # gone from DescribeInstances, as AWS does an hour after termination
    node = sync(5)
    assert (node.state, node.ended_at) == (NodeState.TERMINATED, t0 + timedelta(hours=4))


def test_inventory_sync_ends_a_node_that_vanishes_while_running(ec2):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    provider = ProviderFactory(credential_ref="", regions=["us-east-1"])
    ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1, InstanceType="g5.xlarge")
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
    inventory_sync(provider=provider, now=t0)
    ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].reservations.clear()
    inventory_sync(provider=provider, now=t0 + timedelta(minutes=5))
    node = Node.objects.get(site__provider=provider)
    assert (node.state, node.ended_at) == (NodeState.TERMINATED, t0 + timedelta(minutes=5))


def test_ledger_backfill_command_prints_rows_and_unpriced_nodes(capsys):
    p5_price(date(2026, 1, 1), "98.32")
    priced = node_with_gpus(launched_at=at(1, 0))
    unpriced = node_with_gpus(gpus=1, instance_type="x9.nothing", launched_at=at(1, 0))
    call_command("ledger_backfill", "--from", "2026-03-01", "--to", "2026-03-02")
    out = capsys.readouterr().out
    assert "ledger 2026-03-01..2026-03-02: 96 hourly rows" in out
    assert f"{unpriced.name} (id {unpriced.pk})" in out and priced.name not in out
    call_command("ledger_backfill", "--from", "2026-03-03", "--to", "2026-03-03", "--node", priced.name)
    assert "24 hourly rows" in capsys.readouterr().out
    assert not LedgerEntry.objects.filter(node=unpriced, hour__gte=at(3, 0)).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-03-02", "--to", "yesterday"], "'yesterday' is not a date"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "--to is before --from"),
        (["--from", "2026-03-01", "--to", "2026-03-01", "--node", "no-such-node"], "No node named or numbered"),
    ],
)
def test_ledger_backfill_command_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("ledger_backfill", *args)


def test_ledger_update_task_recomputes_the_last_hours_and_the_current_one():
    p5_price(date(2020, 1, 1), "36.00")
    now = timezone.now()
    node = node_with_gpus(gpus=1, launched_at=now - timedelta(days=1))
    result = ledger_update()
    current = now.replace(minute=0, second=0, microsecond=0)
    got = {r.hour: r.active_s for r in rows(node)}
    assert got[current - timedelta(hours=2)] == got[current - timedelta(hours=1)] == 3600
    assert set(got) - {current - timedelta(hours=2), current - timedelta(hours=1)} <= {current}
    assert result["rows"] == len(got) and result["unpriced_count"] == 0


def test_ledger_backfill_task_logs_unpriced_nodes(caplog):
    node = node_with_gpus(gpus=1, instance_type="x9.nothing", launched_at=at(1, 0))
    result = ledger_backfill_task("2026-03-01", "2026-03-01")
    assert result["rows"] == 24 and result["unpriced_nodes"] == [{"id": node.pk, "name": node.name}]
    assert f"1 node(s) have no price or cost model and were booked at $0: {node.name}" in caplog.text


def test_beat_runs_the_ledger_and_the_cost_import():
    from django_celery_beat.models import PeriodicTask

    from billing.schedules import billing_schedules_sync

    billing_schedules_sync()
    tasks = dict(PeriodicTask.objects.values_list("task", "queue"))
    assert tasks["billing.tasks.ledger_update"] == "billing"
    assert tasks["billing.tasks.costs_import"] == "billing"


def test_demo_ledger_seed_covers_the_last_days_up_to_now():
    p5_price(date(2026, 1, 1), "10.00")
    now = at(5, 6, 30)
    node = node_with_gpus(gpus=1, launched_at=at(1, 0))
    report = demo_ledger_seed(days=2, now=now)
    assert report.days == [date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5)]
    assert len(rows(node)) == 48 + 7  # two whole days, and 06:30 today counts as 7 hours (the last one half)
    assert rows(node)[-1].compute_usd == Decimal("5")


@pytest.mark.django_db(transaction=True)
def test_overlapping_computations_wait_for_each_other_instead_of_colliding():
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    p5_price(date(2026, 1, 1), "10.00")
    nodes = [node_with_gpus(gpus=1, launched_at=at(1, 0)) for _ in range(5)]

    def compute(_):
        try:
            return ledger_compute(start=at(2, 0), end=at(3, 0), now=NOW).rows
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(compute, range(3)))
    assert results == [5 * 24] * 3
    assert LedgerEntry.objects.filter(node__in=nodes).count() == 5 * 24
