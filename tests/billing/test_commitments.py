"""Commitments in the ledger (billing/commitments.py): a savings plan over a month and reserved instances, checked
by hand; the order count-then-spend; spot, other accounts, regions and unpriced nodes never covered; the unused
part in the daily sums; reconciliation against a bill that includes the commitment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from billing.choices import BilledCostSource, CommitmentBasis, CommitmentKind, PriceSource
from billing.commitments import commitment_unused_days_refresh, commitments_apply
from billing.ledger import ledger_compute, reconciliation_list
from billing.models import BilledCost, Commitment, CommitmentHour, InstancePrice, LedgerDay, LedgerEntry
from billing.selectors import reconciliation_by_provider
from fleet.choices import NodeLifecycle
from tests.factories import GPUFactory, NodeFactory, ProviderFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db

D = Decimal
A100_NVML = "NVIDIA A100-SXM4-40GB"
H100_NVML = "NVIDIA H100 80GB HBM3"
JUNE = datetime(2026, 6, 1, tzinfo=UTC)
JULY = datetime(2026, 7, 1, tzinfo=UTC)


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


def price(instance_type: str, on_demand: str, spot: str, *, gpu: str, region: str = "us-east-1") -> InstancePrice:
    return InstancePrice.objects.create(
        provider_kind="aws",
        region=region,
        instance_type=instance_type,
        gpu_model=gpu,
        gpu_count=8,
        on_demand_usd_per_h=D(on_demand),
        spot_usd_per_h=D(spot),
        effective_from=date(2026, 1, 1),
        source=PriceSource.OVERRIDE,
        note="Test price",
    )


def node(site, *, instance_type: str, start: datetime, end: datetime | None = None, **kwargs):
    created = NodeFactory(site=site, instance_type=instance_type, launched_at=start, ended_at=end, **kwargs)
    model = H100_NVML if instance_type.startswith("p5") else A100_NVML
    for index in range(8):
        GPUFactory(node=created, index=index, model=model)
    return created


def commitment(site, **kwargs) -> Commitment:
    fields = {"provider": site.provider, "name": "test", "start": date(2026, 6, 1), "end": date(2026, 7, 1)}
    fields.update(kwargs)
    return Commitment.objects.create(**fields)


def savings_plan(site, *, hourly: str = "50", pct: str = "30", **kwargs) -> Commitment:
    return commitment(
        site,
        kind=CommitmentKind.SAVINGS_PLAN,
        basis=CommitmentBasis.SPEND,
        hourly_commitment_usd=D(hourly),
        discount_pct=D(pct),
        **kwargs,
    )


def reserved(site, *, count: int, rate: str, instance_type: str = "p5.48xlarge", **kwargs) -> Commitment:
    kwargs.setdefault("kind", CommitmentKind.RESERVED_INSTANCE)
    return commitment(
        site,
        basis=CommitmentBasis.COUNT,
        region="us-east-1",
        instance_type=instance_type,
        count=count,
        rate_usd_per_h=D(rate),
        **kwargs,
    )


def ledger_run(start: datetime, end: datetime, **kwargs):
    """ledger_compute at JULY: it applies the commitments and writes their unused parts' day rows itself."""
    return ledger_compute(start=start, end=end, now=JULY, **kwargs)


def entries(of) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(node=of).order_by("hour"))


def hour_sums(plan: Commitment) -> dict[str, Decimal]:
    fields = ("committed_usd", "used_usd", "unused_usd", "eligible_list_usd", "covered_list_usd")
    return CommitmentHour.objects.filter(commitment=plan).aggregate(**{f: Sum(f) for f in fields})


@pytest.fixture
def site():
    return SiteFactory(region="us-east-1")


@pytest.fixture
def june_fleet(site):
    """The savings-plan month: three eligible p4d.24xlarge ($25/h on-demand) and a spot one ($8/h)."""
    price("p4d.24xlarge", "25.00", "8.00", gpu="A100-40GB")
    return {
        "a": node(site, instance_type="p4d.24xlarge", start=at(1) - timedelta(days=1)),
        "b": node(site, instance_type="p4d.24xlarge", start=at(1) - timedelta(days=1), end=at(26),
                  lifecycle=NodeLifecycle.RESERVED),
        "c": node(site, instance_type="p4d.24xlarge", start=at(11, 0, 30), end=at(21)),
        "spot": node(site, instance_type="p4d.24xlarge", start=at(1), lifecycle=NodeLifecycle.SPOT),
    }  # fmt: skip


def test_savings_plan_month_hand_checked(site, june_fleet):
    """June 2026 (720 h), a savings plan of $50/h at 30 % off on-demand; $50 buys 50 / 0.7 = $71.428571 of list.

    Nodes, in id order: A (on-demand, all month), B (reserved, until 26 June 00:00), C (on-demand, 11 June 00:30
    to 21 June 00:00), a spot node all month. Each eligible node-hour lists at $25 and costs 25 × 0.7 = $17.50
    under the plan.

    - 360 h with A and B (1–10 and 21–25 June): list 50, plan pays 35, unused 15, all covered.
    - 11 June 00:00, C's half hour: list 25 + 25 + 12.50 = 62.50, plan 17.50 + 17.50 + 8.75 = 43.75, unused 6.25.
    - 239 h with A, B, C: A and B take 35 of the 50; C's 17.50 exceeds the 15 left: 15 covers 15 / 0.7 =
      21.428571 of C's list, the other 3.571429 is paid at on-demand; C pays 18.571429. Used 50, unused 0.
    - 120 h with A alone (26–30 June): list 25, plan 17.50, unused 32.50.

    Month: committed 720 × 50 = 36,000.00; used 360 × 35 + 43.75 + 239 × 50 + 120 × 17.50 = 12,600 + 43.75 +
    11,950 + 2,100 = 26,693.75; unused 36,000 − 26,693.75 = 9,306.25 (360 × 15 + 6.25 + 120 × 32.50).
    Eligible list 360 × 50 + 62.50 + 239 × 75 + 120 × 25 = 38,987.50; covered list 18,000 + 62.50 + 239 ×
    71.428571 + 3,000 = 38,133.928469; uncovered 239 × 3.571429 = 853.571531 ($853.57); savings covered list −
    used = 11,440.178469 ($11,440.18). The spot node pays 720 × 8 = 5,760 and is never covered.
    Spend: compute 12,600 (A) + 10,500 (B) + 8.75 + 239 × 18.571429 (C) + 5,760 = 33,307.321531, plus unused
    9,306.25 = 42,613.571531 = committed 36,000 + uncovered 853.571531 + spot 5,760.
    """
    plan = savings_plan(site, team=TeamFactory())
    report = ledger_run(JUNE, JULY)
    assert report.rows == 720 + 600 + 240 + 720

    sums = hour_sums(plan)
    assert CommitmentHour.objects.filter(commitment=plan).count() == 720
    assert sums == {
        "committed_usd": D("36000"),
        "used_usd": D("26693.75"),
        "unused_usd": D("9306.25"),
        "eligible_list_usd": D("38987.5"),
        "covered_list_usd": D("38133.928469"),
    }
    assert sums["eligible_list_usd"] - sums["covered_list_usd"] == D("853.571531")  # uncovered
    assert sums["covered_list_usd"] - sums["used_usd"] == D("11440.178469")  # savings

    a, b, c, spot = (entries(june_fleet[k]) for k in ("a", "b", "c", "spot"))
    assert {(e.compute_usd, e.covered_usd, e.commitment_id) for e in a + b} == {(D("17.5"), D("17.5"), plan.pk)}
    assert (c[0].hour, c[0].active_s, c[0].compute_usd, c[0].covered_usd) == (at(11), 1800, D("8.75"), D("8.75"))
    assert {(e.compute_usd, e.covered_usd) for e in c[1:]} == {(D("18.571429"), D("15"))}
    assert {(e.compute_usd, e.covered_usd, e.commitment_id) for e in spot} == {(D("8"), D(0), None)}
    assert all(e.rate_usd_per_h == D(25) for e in a + b + c)  # the un-committed rate stays on the row

    total = LedgerEntry.objects.aggregate(compute=Sum("compute_usd"), covered=Sum("covered_usd"))
    assert total == {"compute": D("33307.321531"), "covered": D("26693.75")}
    days = LedgerDay.objects.filter(day__gte=JUNE.date(), day__lt=JULY.date())
    month = days.aggregate(total=Sum("total_usd"), unused=Sum("unused_commitment_usd"), covered=Sum("covered_usd"))
    assert month == {"total": D("42613.571531"), "unused": D("9306.25"), "covered": D("26693.75")}
    unused_rows = days.filter(site=None)
    # 12–20 June use the plan fully (no unused row); 11 June has C's half hour (6.25 unused).
    assert sorted(r.day.day for r in unused_rows) == [*range(1, 12), *range(21, 31)]
    assert days.get(day=date(2026, 6, 11), site=None).total_usd == D("6.25")
    assert {(r.team_id, r.provider_id, r.lifecycle, r.nodes, r.gpu_model) for r in unused_rows} == {
        (plan.team_id, site.provider_id, NodeLifecycle.RESERVED, 0, "")  # a plan is for no one GPU model
    }
    assert days.get(day=date(2026, 6, 30), site=None).total_usd == D("780")  # 24 × 32.50


def test_reserved_instances_hand_checked(site):
    """2 × p5.48xlarge reserved at $60/h each (on-demand $98.32) on 1 June, hours 10:00 and 11:00.

    10:00: three on-demand p5 run: the first two by id pay 60 each, the third 98.32 (uncovered); used 120 of 120.
    11:00: one runs: it pays 60; the other reservation is unused: 60. A spot p5 ($40/h) runs both hours and is
    never covered. Committed 2 × 120 = 240, used 180, unused 60; eligible list 4 × 98.32 = 393.28, covered list
    3 × 98.32 = 294.96, uncovered 98.32, savings 294.96 − 180 = 114.96.
    """
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    first = node(site, instance_type="p5.48xlarge", start=at(1, 10))
    second = node(site, instance_type="p5.48xlarge", start=at(1, 10), end=at(1, 11))
    third = node(site, instance_type="p5.48xlarge", start=at(1, 10), end=at(1, 11))
    spot = node(site, instance_type="p5.48xlarge", start=at(1, 10), lifecycle=NodeLifecycle.SPOT)
    ri = reserved(site, count=2, rate="60")

    ledger_run(at(1, 10), at(1, 12))

    assert [(e.compute_usd, e.covered_usd, e.commitment_id) for e in entries(first)] == [
        (D(60), D(60), ri.pk),
        (D(60), D(60), ri.pk),
    ]
    assert [(e.compute_usd, e.commitment_id) for e in entries(second)] == [(D(60), ri.pk)]
    assert [(e.compute_usd, e.covered_usd, e.commitment_id) for e in entries(third)] == [(D("98.32"), D(0), None)]
    assert {(e.compute_usd, e.commitment_id) for e in entries(spot)} == {(D(40), None)}
    rows = list(CommitmentHour.objects.filter(commitment=ri).order_by("hour"))
    figures = [
        (r.hour, r.committed_usd, r.used_usd, r.unused_usd, r.eligible_list_usd, r.covered_list_usd) for r in rows
    ]
    assert figures == [
        (at(1, 10), D(120), D(120), D(0), D("294.96"), D("196.64")),
        (at(1, 11), D(120), D(60), D(60), D("98.32"), D("98.32")),
    ]  # fmt: skip
    unused = LedgerDay.objects.get(site=None)
    # p5.48xlarge is an H100 type in the catalogue: the unused row carries the ledger's (NVML) name for it.
    assert (unused.day, unused.gpu_model, unused.unused_commitment_usd, unused.total_usd) == (
        date(2026, 6, 1),
        H100_NVML,
        D(60),
        D(60),
    )
    assert unused.team_id is None and unused.project_id is None and unused.compute_usd == 0


def test_count_basis_applies_before_spend_basis_whatever_the_ids(site):
    """A plan ($50/h, 30 %) created before a 1-instance reservation ($60/h): the reservation still goes first.

    Node 1: reserved, pays 60. Node 2: the plan: 98.32 × 0.7 = 68.824 > 50, so 50 covers 50 / 0.7 = 71.428571
    of list and the rest, 98.32 − 71.428571 = 26.891429, is on-demand: 76.891429. Its 8 GPUs idle 2 GPU-hours:
    idle $ = 76.891429 × 2 / 8 = 19.222857.
    """
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    one = node(site, instance_type="p5.48xlarge", start=at(1, 10), end=at(1, 11))
    two = node(site, instance_type="p5.48xlarge", start=at(1, 10), end=at(1, 11))
    plan = savings_plan(site)
    ri = reserved(site, count=1, rate="60")
    assert plan.pk < ri.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fleet_gpu_hour (hour, gpu_id, energy_wh, samples, idle_s, minutes, util_1m, power_1m_w,"
            " mem_1m_mib, temp_1m_c) SELECT %s, id, 500, 240, 3600, '{}', '{}', '{}', '{}', '{}' FROM fleet_gpu"
            " WHERE node_id = %s AND index < 2",
            [at(1, 10), two.pk],
        )

    ledger_run(at(1, 10), at(1, 11))

    (e1,), (e2,) = entries(one), entries(two)
    assert (e1.compute_usd, e1.covered_usd, e1.commitment_id) == (D(60), D(60), ri.pk)
    assert (e2.compute_usd, e2.covered_usd, e2.commitment_id) == (D("76.891429"), D(50), plan.pk)
    assert (e2.idle_gpu_hours, e2.idle_usd) == (D(2), D("19.222857"))
    sp_hour = CommitmentHour.objects.get(commitment=plan)
    assert (sp_hour.used_usd, sp_hour.unused_usd, sp_hour.eligible_list_usd, sp_hour.covered_list_usd) == (
        D(50),
        D(0),
        D("98.32"),  # what the reservation left to it
        D("71.428571"),
    )


def test_two_plans_share_the_hour_in_id_order(site):
    """Two plans, $10/h and $100/h, 20 % off: one $98.32 node. The first buys 10 / 0.8 = 12.5 of list; the second
    covers the remaining 85.82 for 85.82 × 0.8 = 68.656 (unused 31.344). The node pays 10 + 68.656 = 78.656."""
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    only = node(site, instance_type="p5.48xlarge", start=at(1, 10), end=at(1, 11))
    small = savings_plan(site, hourly="10", pct="20", name="small")
    big = savings_plan(site, hourly="100", pct="20", name="big", region="us-east-1")

    ledger_run(at(1, 10), at(1, 11))

    (entry,) = entries(only)
    assert (entry.compute_usd, entry.covered_usd, entry.commitment_id) == (D("78.656"), D("78.656"), small.pk)
    got = {h.commitment_id: (h.used_usd, h.unused_usd, h.covered_list_usd) for h in CommitmentHour.objects.all()}
    assert got == {small.pk: (D(10), D(0), D("12.5")), big.pk: (D("68.656"), D("31.344"), D("85.82"))}


def test_what_a_commitment_never_covers(site):
    """Spot, another account, another region and another instance type are not eligible: every one of them pays
    what it would without the commitments, which stay wholly unused."""
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    price("p5.48xlarge", "100.00", "41.00", gpu="H100", region="us-west-2")
    price("p4d.24xlarge", "25.00", "8.00", gpu="A100-40GB")
    west = SiteFactory(provider=site.provider, region="us-west-2", zone="us-west-2a")
    other_account = SiteFactory(region="us-east-1")
    nodes = [
        node(site, instance_type="p5.48xlarge", start=at(1, 10), lifecycle=NodeLifecycle.SPOT),
        node(other_account, instance_type="p5.48xlarge", start=at(1, 10)),
        node(west, instance_type="p5.48xlarge", start=at(1, 10)),
        node(site, instance_type="p4d.24xlarge", start=at(1, 10)),
    ]
    reserved(site, count=5, rate="1")
    savings_plan(site, region="us-east-1", instance_type="p5.48xlarge")

    ledger_run(at(1, 10), at(1, 11))

    got = [(e.compute_usd, e.covered_usd, e.commitment_id) for n in nodes for e in entries(n)]
    assert got == [(D(40), 0, None), (D("98.32"), 0, None), (D(100), 0, None), (D(25), 0, None)]
    assert set(CommitmentHour.objects.values_list("used_usd", "unused_usd")) == {(D(0), D(5)), (D(0), D(50))}


def test_a_plan_for_every_type_and_region_skips_unpriced_nodes(site):
    """A plan without region or type covers any priced on-demand node of the account, never an unpriced one
    (its $0 is not a price): the p4d pays 25 × 0.7 = 17.50; the unknown type stays at $0, unpriced."""
    price("p4d.24xlarge", "25.00", "8.00", gpu="A100-40GB")
    unknown = node(site, instance_type="x-unknown", start=at(1, 10))
    p4d = node(site, instance_type="p4d.24xlarge", start=at(1, 10))
    plan = savings_plan(site)
    ledger_run(at(1, 10), at(1, 11))
    assert [(e.compute_usd, e.priced, e.commitment_id) for e in entries(unknown)] == [(D(0), False, None)]
    assert [(e.compute_usd, e.commitment_id) for e in entries(p4d)] == [(D("17.5"), plan.pk)]
    hour = CommitmentHour.objects.get()
    assert (hour.used_usd, hour.unused_usd, hour.eligible_list_usd) == (D("17.5"), D("32.5"), D(25))


def test_recomputing_some_nodes_recosts_the_whole_hour_and_is_idempotent(site, june_fleet):
    """ledger_compute for one node re-applies the plan to every entry of the hours: the figures are those of a
    full run; deleting the plan and recomputing brings every entry back to on-demand."""
    plan = savings_plan(site)
    ledger_run(at(11), at(12))
    before = {(e.node_id, e.hour): (e.compute_usd, e.covered_usd, e.idle_usd) for e in LedgerEntry.objects.all()}
    hours_before = hour_sums(plan)

    ledger_run(at(11), at(12), node_ids=[june_fleet["c"].pk])
    ledger_run(at(11), at(12), node_ids=[june_fleet["a"].pk])
    after = {(e.node_id, e.hour): (e.compute_usd, e.covered_usd, e.idle_usd) for e in LedgerEntry.objects.all()}
    assert after == before and hour_sums(plan) == hours_before
    assert CommitmentHour.objects.count() == 24

    plan.delete()
    ledger_run(at(11), at(12), node_ids=[june_fleet["spot"].pk])
    eligible = LedgerEntry.objects.exclude(node=june_fleet["spot"])
    assert set(eligible.values_list("covered_usd", "commitment_id")) == {(D(0), None)}
    assert set(eligible.filter(active_s=3600).values_list("compute_usd", flat=True)) == {D(25)}
    assert not CommitmentHour.objects.exists() and not LedgerDay.objects.filter(site=None).exists()


def test_commitment_in_force_only_on_its_days(site, june_fleet):
    """A plan from 10 June to 12 June (end exclusive) covers 48 hours of a 3-day run and writes 48 hours."""
    plan = savings_plan(site, start=date(2026, 6, 10), end=date(2026, 6, 12))
    ledger_run(at(9), at(12))
    assert CommitmentHour.objects.filter(commitment=plan).count() == 48
    covered = LedgerEntry.objects.filter(commitment=plan)
    assert covered.filter(hour__lt=at(10)).count() == 0 and covered.filter(hour__gte=at(12)).count() == 0
    assert covered.filter(node=june_fleet["a"]).count() == 48


def test_unused_days_sum_commitments_of_the_same_dimensions(site):
    """Two idle reservations of the same type and team (one regional, one for every region) make one LedgerDay row
    per day: 24 × (2 × 1 + 1 × 3)."""
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    team = TeamFactory()
    reserved(site, count=2, rate="1", team=team, name="ri-1")
    commitment(site, kind=CommitmentKind.RESERVED_INSTANCE, basis=CommitmentBasis.COUNT, instance_type="p5.48xlarge",
               count=1, rate_usd_per_h=D(3), team=team, name="ri-2-any-region")  # fmt: skip
    ledger_run(at(1), at(3))
    rows = list(LedgerDay.objects.filter(site=None).order_by("day"))
    assert [(r.day, r.team_id, r.gpu_model, r.unused_commitment_usd, r.total_usd) for r in rows] == [
        (date(2026, 6, 1), team.pk, H100_NVML, D(120), D(120)),
        (date(2026, 6, 2), team.pk, H100_NVML, D(120), D(120)),
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        assert commitment_unused_days_refresh(cursor, days=[date(2026, 6, 1)]) == 1  # replaces, never doubles
    assert LedgerDay.objects.filter(site=None).count() == 2


def test_a_day_with_a_commitment_reconciles_with_its_bill(site, june_fleet):
    """The bill charges the plan's 24 × $50 = 1,200 a day, used or not, plus uncovered usage at on-demand.

    15 June (the plan fully used): 1,200 + C's uncovered 24 × 3.571429 = 85.714296 + the spot node's 24 × 8 =
    192: 1,477.714296, billed as $1,477.71. 30 June (A alone): 1,200 + 192 = 1,392, of which the ledger has
    24 × 17.50 = 420 on A's rows and 24 × 32.50 = 780 on the unused row: without that row it would be 780 short."""
    savings_plan(site)
    ledger_run(at(15), at(16))
    ledger_run(at(30), JULY)
    BilledCost.objects.create(provider=site.provider, day=date(2026, 6, 15), usd=D("1477.71"))
    BilledCost.objects.create(provider=site.provider, day=date(2026, 6, 30), usd=D("1392.00"))
    got = reconciliation_list(provider=site.provider, start=date(2026, 6, 15), end=JULY.date())
    by_day = {row["day"]: row for row in got}
    assert by_day[date(2026, 6, 15)]["estimated_usd"] == D("1477.714296")
    assert by_day[date(2026, 6, 15)]["difference_usd"] == D("-0.004296")
    assert by_day[date(2026, 6, 30)]["estimated_usd"] == D("1392")
    assert by_day[date(2026, 6, 30)]["difference_pct"] == D("0.00")


def test_ledger_days_include_the_unused_commitment_rows_by_themselves(site):
    """ledger_compute alone writes the unused rows (ledger_days_refresh calls commitment_unused_days_refresh)."""
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    reserved(site, count=1, rate="2")
    ledger_compute(start=at(1), end=at(2), now=JULY)
    assert LedgerDay.objects.get(site=None).unused_commitment_usd == D(48)


def test_commitments_apply_returns_the_hours_written(site):
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    reserved(site, count=1, rate="2")
    savings_plan(site, start=date(2026, 6, 2))
    with transaction.atomic(), connection.cursor() as cursor:
        assert commitments_apply(cursor, start=at(1, 12), end=at(2, 12)) == 24 + 12


def test_gcp_committed_use_discounts_apply_and_reconcile_with_a_focus_bill(site):
    """A Google Cloud account, 15 June: two a3-highgpu-8g ($88/h on-demand) run all day. The resource-based CUD
    (count basis, 1 × $55/h) covers the first (lower id); the spend-based CUD ($20/h at 25 % off) then buys
    20 / 0.75 = $26.666667 of the second's $88 list an hour, which pays 20 + 88 − 26.666667 = 81.333333.
    Day: 24 × 55 = 1,320 + 24 × 81.333333 = 1,951.999992, total 3,271.999992; nothing unused. GCP's bill,
    imported from its FOCUS export, says $3,272.00: a difference of $0.000008 (0.00 %), beside the AWS account's
    (the ``site`` fixture: nothing runs, so its day is $0 against a $5 bill)."""
    gcp = SiteFactory(provider=ProviderFactory(kind="gcp", name="gcp-prod"), region="us-central1", zone="")
    InstancePrice.objects.create(
        provider_kind="gcp", region="us-central1", instance_type="a3-highgpu-8g", gpu_model="H100", gpu_count=8,
        on_demand_usd_per_h=D(88), effective_from=date(2026, 1, 1), source=PriceSource.CATALOGUE,
    )  # fmt: skip
    first = node(gcp, instance_type="a3-highgpu-8g", start=at(14))
    second = node(gcp, instance_type="a3-highgpu-8g", start=at(14))
    commitment(gcp, kind=CommitmentKind.COMMITTED_USE, basis=CommitmentBasis.COUNT, region="us-central1",
               instance_type="a3-highgpu-8g", count=1, rate_usd_per_h=D(55), name="cud-resource")  # fmt: skip
    commitment(gcp, kind=CommitmentKind.COMMITTED_USE, basis=CommitmentBasis.SPEND, hourly_commitment_usd=D(20),
               discount_pct=D(25), name="cud-spend")  # fmt: skip
    ledger_run(at(15), at(16))
    assert {e.compute_usd for e in entries(first)} == {D(55)}
    assert {(e.compute_usd, e.covered_usd) for e in entries(second)} == {(D("81.333333"), D(20))}
    assert LedgerDay.objects.filter(provider=gcp.provider, site=None).count() == 0
    BilledCost.objects.create(provider=gcp.provider, day=date(2026, 6, 15), usd=D(3272), source=BilledCostSource.FOCUS)
    BilledCost.objects.create(provider=site.provider, day=date(2026, 6, 15), usd=D(5))
    (row,) = reconciliation_list(provider=gcp.provider, start=date(2026, 6, 15), end=date(2026, 6, 16))
    assert (row["estimated_usd"], row["difference_usd"], row["difference_pct"]) == (
        D("3271.999992"), D("0.000008"), D("0.00")
    )  # fmt: skip
    accounts = reconciliation_by_provider(start=date(2026, 6, 15), end=date(2026, 6, 16))
    assert [(a["provider"].kind, a["rows"][0]["billed_usd"]) for a in accounts] == [("aws", D(5)), ("gcp", D(3272))]


def test_no_hour_after_now_is_committed(site):
    """A backfill of today at 10:30 commits the hours up to 11:00: 11 × $2 unused, not the whole day's 48."""
    price("p5.48xlarge", "98.32", "40.00", gpu="H100")
    plan = reserved(site, count=1, rate="2")
    ledger_compute(start=at(1), end=at(2), now=at(1, 10, 30))
    assert CommitmentHour.objects.filter(commitment=plan).count() == 11
    assert LedgerDay.objects.get(site=None).unused_commitment_usd == D(22)


def test_the_demo_seeds_a_reserved_instance_and_a_savings_plan_once():
    """The demo's AWS account gets an RI of one instance more than it runs of its commonest type (so a small unused
    line: one instance's rate every hour, 60 % of on-demand) and a Compute Savings Plan; seeding again adds none."""
    from devtools.demo.billing import demo_ledger_seed, demo_prices_seed
    from devtools.demo.fleet import demo_fleet_seed

    demo_fleet_seed(nodes=40, seed=11)
    assert demo_prices_seed()["demo_commitments_created"] == 2
    ri = Commitment.objects.get(basis=CommitmentBasis.COUNT)
    plan = Commitment.objects.get(basis=CommitmentBasis.SPEND)
    assert (ri.provider.name, ri.kind, ri.region, plan.kind, plan.region) == (
        "aws-prod", CommitmentKind.RESERVED_INSTANCE, "us-east-1", CommitmentKind.SAVINGS_PLAN, ""
    )  # fmt: skip
    demo_ledger_seed(days=2)
    assert LedgerEntry.objects.filter(commitment=ri).exists() and LedgerEntry.objects.filter(commitment=plan).exists()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)  # a whole day
    unused = LedgerDay.objects.filter(site=None, day=yesterday).aggregate(u=Sum("unused_commitment_usd"))["u"]
    # One instance idle all day (two if one of the type launched during it; the plan is used up every hour).
    assert 0 < unused <= 2 * 24 * ri.rate_usd_per_h
    assert demo_prices_seed()["demo_commitments_created"] == 0
    assert Commitment.objects.count() == 2
