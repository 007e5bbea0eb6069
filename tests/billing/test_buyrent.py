"""Buy vs rent (billing/buyrent/): one GPU model's break-even checked by hand from real telemetry hourly roll-ups
through the ledger, the what-if figures, and the edge cases: no cost model, no cloud price, zero utilisation, a
model nobody has, unknown models, team scope and a bounded number of queries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db.models import F
from django.test import override_settings

from billing import buyrent
from billing.choices import CommitmentBasis, CommitmentKind, PriceSource
from billing.ledger import ledger_compute
from billing.models import Commitment, InstancePrice, LedgerDay, OnPremCostModel
from fleet.choices import NodeLifecycle
from tests.billing.test_ledger import node_with_gpus, rollup_insert
from tests.billing.test_selectors import ledger_day
from tests.factories import OnPremSiteFactory, ProjectFactory, ProviderFactory, SiteFactory, TeamFactory

pytestmark = pytest.mark.django_db

D = Decimal
H100_NVML = "NVIDIA H100 80GB HBM3"
TODAY = date(2026, 3, 15)  # prices, commitments and cost models in force on this day
START, END = date(2026, 3, 1), date(2026, 3, 15)  # the window measured: 1-14 March
NOW = datetime(2026, 3, 10, tzinfo=UTC)


def at(hour: int) -> datetime:
    return datetime(2026, 3, 2, hour, tzinfo=UTC)


def price(kind: str, region: str, instance_type: str, on_demand: str | None, spot: str | None, **kwargs):
    fields = {"gpu_model": "H100", "gpu_count": 8, "effective_from": date(2026, 1, 1), "source": PriceSource.OVERRIDE}
    fields.update(kwargs)
    return InstancePrice.objects.create(
        provider_kind=kind,
        region=region,
        instance_type=instance_type,
        on_demand_usd_per_h=None if on_demand is None else D(on_demand),
        spot_usd_per_h=None if spot is None else D(spot),
        **fields,
    )


def answer_for(gpu_model: str = "H100", *, what_if=buyrent.NO_WHAT_IF, teams=None, start=START, end=END):
    return buyrent.buy_vs_rent(start=start, end=end, teams=teams, today=TODAY, gpu_model=gpu_model, what_if=what_if)


def the_row(answer) -> buyrent.BuyRentRow:
    assert len(answer.rows) == 1, answer.rows
    return answer.rows[0]


@pytest.fixture
def world():
    """An owned 8 × H100 node and a rented one (AWS p5.48xlarge), 2 hours of telemetry each, through the ledger;
    H100 prices on AWS and GCP; a savings plan and a reserved instance in force today."""
    onprem_site = OnPremSiteFactory(name="dc-ams", electricity_usd_per_kwh=D("0.12000"), pue=D("1.40"))
    cost_model = OnPremCostModel.objects.create(
        site=onprem_site,
        purchase_usd_per_gpu=D("37500.00"),  # a $300,000 server / 8 GPUs
        amortisation_months=48,
        ops_usd_per_gpu_year=D("3750.00"),
        effective_from=date(2026, 1, 1),
    )
    project = ProjectFactory()
    owned = node_with_gpus(
        site=onprem_site,
        lifecycle=NodeLifecycle.OWNED,
        instance_type="",
        external_id="",
        team=project.team,
        project=project,
        launched_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    aws_site = SiteFactory(region="us-east-1")
    rented = node_with_gpus(
        site=aws_site, instance_type="p5.48xlarge", team=project.team, launched_at=at(10), ended_at=at(12)
    )
    rollup_insert(owned, at(10), energy_wh=700.0, idle_s=3600, idle_gpus=2)
    rollup_insert(owned, at(11), energy_wh=350.0, idle_s=3600, idle_gpus=2)
    rollup_insert(rented, at(10), energy_wh=700.0, idle_s=3600, idle_gpus=4)
    rollup_insert(rented, at(11), energy_wh=700.0)
    price("aws", "us-east-1", "p5.48xlarge", "98.32", "24.00")
    price("gcp", "us-central1", "a3-highgpu-8g", "88.00", "32.00")
    price("aws", "us-west-2", "p5.48xlarge", "60.00", "8.00", effective_from=date(2026, 4, 1))  # not yet
    price("gcp", "us-central1", "a2-highgpu-8g", "29.39", "8.80", gpu_model="A100-40GB")  # another model
    common = {"provider": aws_site.provider, "start": date(2026, 3, 10), "end": date(2027, 3, 10)}
    Commitment.objects.create(
        name="sp-1",
        kind=CommitmentKind.SAVINGS_PLAN,
        basis=CommitmentBasis.SPEND,
        hourly_commitment_usd=D("50"),
        discount_pct=D("40.00"),
        **common,
    )
    Commitment.objects.create(
        name="ri-p5",
        kind=CommitmentKind.RESERVED_INSTANCE,
        basis=CommitmentBasis.COUNT,
        region="us-east-1",
        instance_type="p5.48xlarge",
        count=1,
        rate_usd_per_h=D("64.00"),
        **common,
    )
    ledger_compute(start=at(10), end=at(12), now=NOW)
    return {
        "onprem_site": onprem_site,
        "cost_model": cost_model,
        "owned": owned,
        "rented": rented,
        "team": project.team,
    }


def test_h100_break_even_hand_checked(world):
    """Every figure by hand.

    Utilisation, from the telemetry roll-ups through the ledger (LedgerDay of 2 March): owned 2 h × 8 GPUs = 16
    GPU-h, 2 GPUs idle each hour = 4 idle; rented 16 GPU-h, 4 idle at 10:00 = 4 idle. u = 1 − 8/32 = 0.75.
    Energy (on-prem only): 8 × 700 Wh + 8 × 350 Wh = 8.4 kWh × PUE 1.4 = 11.76 kWh over 16 − 4 = 12 used
    GPU-h: k = 0.98 kWh per used GPU-h; × the site's $0.12/kWh: E = $0.1176 per used GPU-h.
    Owning B = 37,500 / (48 × 730) + 3,750 / 8,760 = 52,500 / 35,040 = $1.498287671… per owned GPU-h;
    C(0.75) = B / 0.75 + E = 1.997716894… + 0.1176 = $2.115316894… per used GPU-h.
    Cloud: on-demand AWS p5 $98.32 / 8 = 12.29, GCP a3 $88 / 8 = 11.00 → 11.00 (GCP); spot AWS $24 / 8 = 3.00,
    GCP $32 / 8 = 4.00 → 3.00 (AWS); AWS us-west-2's $60 starts in April (not in force), the A100 row is
    another model. Committed: the savings plan, 40 % off AWS's cheapest on-demand 12.29 = 7.374; the RI $64 / 8
    = 8.00 → 7.374.
    Break-even u* = B / (P − E): on-demand 1.498287671 / 10.8824 = 0.137680 (13.77 %); spot / 2.8824 = 0.519806;
    committed / 7.2564 = 0.206478.
    Saving per GPU-month S = 0.75 × 730 × (P − E) − 3,750 / 12: on-demand 547.5 × 10.8824 − 312.5 = 5,645.614,
    months 37,500 / 5,645.614 = 6.6423; spot 1,265.614, 29.6299 months; committed 3,660.379, 10.2448 months.
    """
    row = the_row(answer_for())

    assert row.gpu_model == "H100" and row.usage.nvml_names == {H100_NVML}
    assert (row.usage.gpu_hours, row.usage.idle_gpu_hours) == (D(32), D(8))
    assert (row.usage.onprem_gpu_hours, row.usage.onprem_idle_gpu_hours) == (D(16), D(4))
    assert row.usage.onprem_energy_kwh == D("11.76")
    assert row.utilisation == D("0.75") and row.utilisation_basis == "measured"
    assert row.measured_utilisation_pct == D(75)
    assert (row.energy.kwh_per_gpu_hour, row.energy.kwh_basis) == (D("0.98"), "measured")
    assert (row.energy.usd_per_kwh, row.energy.price_basis) == (D("0.12"), "site")
    assert row.energy.usd_per_gpu_hour == D("0.1176")
    assert row.onprem.basis == "cost-model" and row.onprem.cost_model_id == world["cost_model"].pk
    assert (row.onprem.site, row.onprem.covered_gpu_hours) == ("dc-ams", D(16))
    assert round(row.onprem_usd_per_owned_gpu_hour, 9) == D("1.498287671")
    assert round(row.onprem_usd_per_used_gpu_hour, 9) == D("2.115316895")
    assert (row.on_demand.usd_per_gpu_hour, row.on_demand.provider_kind, row.on_demand.instance_type) == (
        D("11.00"),
        "gcp",
        "a3-highgpu-8g",
    )
    assert (row.spot.usd_per_gpu_hour, row.spot.provider_kind, row.spot.region) == (D("3.00"), "aws", "us-east-1")
    assert (row.committed.usd_per_gpu_hour, row.committed.basis, row.committed.commitment) == (
        D("7.374"),
        "commitment",
        "sp-1",
    )
    assert row.committed.discount_pct == D("40.00")
    expected = {
        "on-demand": (D("11.00"), D("0.137680"), D("5645.614"), D("6.6423")),
        "spot": (D("3.00"), D("0.519806"), D("1265.614"), D("29.6299")),
        "commitments": (D("7.374"), D("0.206478"), D("3660.379"), D("10.2448")),
    }
    assert [b.versus for b in row.break_even] == list(expected)
    for versus, (cloud, u_star, saving, months) in expected.items():
        figure = row.versus(versus)
        assert figure.cloud_usd_per_gpu_hour == cloud
        assert round(figure.utilisation, 6) == u_star
        assert figure.onprem_cheaper is True
        assert figure.saving_usd_per_month == saving
        assert round(figure.months, 4) == months
    assert round(row.versus_on_demand.utilisation_pct, 2) == D("13.77")
    assert row.notes == ()


def test_the_break_even_is_where_the_costs_meet(world):
    """At the break-even utilisation owning costs exactly the cloud price, and the months are then the
    amortisation period: B / u* + E = P, and purchase / S(u*) = 48."""
    row = the_row(answer_for())
    u_star = row.versus_on_demand.utilisation
    at_break_even = the_row(answer_for(what_if=buyrent.WhatIf(utilisation_pct=u_star * 100)))
    assert round(at_break_even.onprem_usd_per_used_gpu_hour, 9) == D("11.000000000")
    # S(u*) = u* × 730 × (P − E) − ops / 12 = B × 730 − 312.5 = 37,500 / 48 = 781.25: the purchase in 48 months.
    assert round(at_break_even.versus_on_demand.saving_usd_per_month, 6) == D("781.250000")
    assert at_break_even.versus_on_demand.onprem_cheaper is False  # equal is not cheaper
    assert at_break_even.versus_on_demand.months is None


def test_what_if_figures_replace_the_fleets(world):
    """Purchase $30,000, 36 months, $0 operations, 50 %, $0.20/kWh: B = 30,000 / 26,280 = 1.141552511;
    E = 0.98 × 0.20 = 0.196; C = 2.283105023 + 0.196 = 2.479105023. On-demand 11.00: u* = 1.141552511 /
    10.804 = 0.105660; S = 0.5 × 730 × 10.804 − 0 = 3,943.46; months 30,000 / 3,943.46 = 7.6075."""
    what_if = buyrent.WhatIf(
        purchase_usd_per_gpu=D("30000"),
        amortisation_months=36,
        ops_usd_per_gpu_year=D("0"),
        utilisation_pct=D("50"),
        usd_per_kwh=D("0.20"),
    )
    row = the_row(answer_for(what_if=what_if))
    assert (row.utilisation, row.utilisation_basis, row.measured_utilisation_pct) == (D("0.5"), "what-if", D(75))
    assert row.onprem.basis == "what-if" and row.onprem.site == "dc-ams"
    assert (row.energy.usd_per_kwh, row.energy.price_basis, row.energy.usd_per_gpu_hour) == (
        D("0.20"),
        "what-if",
        D("0.196"),
    )
    assert round(row.onprem_usd_per_used_gpu_hour, 9) == D("2.479105023")
    od = row.versus_on_demand
    assert round(od.utilisation, 6) == D("0.105660")
    assert od.saving_usd_per_month == D("3943.46") and round(od.months, 4) == D("7.6075")


def test_the_cost_model_covering_most_owned_gpu_hours(world, django_assert_max_num_queries):
    """A node's own cost model beats its site's (as in the ledger); of several, the one covering the most owned
    GPU-hours of the model in the window is compared: here the node's own ($45,000) for its 16 GPU-h, against a
    second site's model covering 24 GPU-h ($30,000), which then wins."""
    own = OnPremCostModel.objects.create(
        node=world["owned"],
        purchase_usd_per_gpu=D("45000"),
        amortisation_months=60,
        ops_usd_per_gpu_year=D("0"),
        effective_from=date(2026, 1, 1),
    )
    with django_assert_max_num_queries(6):
        row = the_row(answer_for())
    assert (row.onprem.cost_model_id, row.onprem.covered_gpu_hours, row.onprem.site) == (own.pk, D(16), "dc-ams")
    other_site = OnPremSiteFactory(name="dc-fra")
    other = OnPremCostModel.objects.create(
        site=other_site,
        gpu_model=H100_NVML,
        purchase_usd_per_gpu=D("30000"),
        amortisation_months=48,
        ops_usd_per_gpu_year=D("0"),
        effective_from=date(2026, 2, 1),
    )
    ledger_day(day=date(2026, 3, 4), site=other_site, lifecycle=NodeLifecycle.OWNED)  # 24 H100 GPU-h
    row = the_row(answer_for())
    assert (row.onprem.cost_model_id, row.onprem.covered_gpu_hours, row.onprem.site) == (other.pk, D(24), "dc-fra")
    assert row.onprem.purchase_usd_per_gpu == D("30000") and row.energy.usd_per_kwh == D("0.21")  # dc-fra's


def test_only_the_amortisation_changed_keeps_the_cost_models_other_figures(world):
    """24 months: B = 37,500 / 17,520 + 3,750 / 8,760 = 2.140410959 + 0.428082192 = 2.568493151."""
    row = the_row(answer_for(what_if=buyrent.WhatIf(amortisation_months=24)))
    assert (row.onprem.basis, row.onprem.purchase_usd_per_gpu, row.onprem.ops_usd_per_gpu_year) == (
        "what-if",
        D("37500.00"),
        D("3750.00"),
    )
    assert round(row.onprem_usd_per_owned_gpu_hour, 9) == D("2.568493151")


def test_no_onprem_cost_model(world):
    """Without a cost model there is no owning cost and so no break-even, and the row says why; a what-if
    purchase then compares with assumed 48 months, $0 operations and $0.10/kWh (no site): B = 37,500 / 35,040
    = 1.070205479, E = 0.98 × 0.10 = 0.098, u* vs on-demand = 1.070205479 / 10.902 = 0.098166."""
    world["cost_model"].delete()
    row = the_row(answer_for())
    assert row.onprem is None and row.onprem_usd_per_used_gpu_hour is None and row.break_even == ()
    assert row.on_demand.usd_per_gpu_hour == D("11.00") and row.utilisation == D("0.75")
    assert any(note.startswith("On-prem: no cost model covers") for note in row.notes)

    row = the_row(answer_for(what_if=buyrent.WhatIf(purchase_usd_per_gpu=D("37500"))))
    assert (row.onprem.amortisation_months, row.onprem.ops_usd_per_gpu_year, row.onprem.basis) == (48, 0, "what-if")
    assert (row.energy.usd_per_kwh, row.energy.price_basis) == (D("0.10"), "assumption")
    assert round(row.versus_on_demand.utilisation, 6) == D("0.098166")
    assert {n.split(":")[0] for n in row.notes} >= {"Amortisation", "Operations", "Electricity"}


def test_no_cloud_price(db):
    """L40S owned at a site with a model for any GPU ($20,000, 40 months, $0 ops: B = 20,000 / 29,200 =
    0.684931507), 24 GPU-h, 6 idle: u = 0.75, C = 0.913242009 + E; no instance price carries L40S: no cloud
    price, no break-even, and a note. Energy: 18 used GPU-h, 9 kWh → 0.5 kWh × $0.21 = 0.105."""
    site = OnPremSiteFactory(electricity_usd_per_kwh=D("0.21"), pue=D("1.35"))
    OnPremCostModel.objects.create(
        site=site,
        purchase_usd_per_gpu=D("20000"),
        amortisation_months=40,
        ops_usd_per_gpu_year=D("0"),
        effective_from=date(2026, 1, 1),
    )
    node_with_gpus(site=site, model="NVIDIA L40S", lifecycle=NodeLifecycle.OWNED, instance_type="", gpus=1)
    ledger_day(
        day=date(2026, 3, 3),
        site=site,
        gpu_model="NVIDIA L40S",
        lifecycle=NodeLifecycle.OWNED,
        idle_gpu_hours=D(6),
        energy_kwh=D(9),
    )
    row = the_row(answer_for(gpu_model=""))
    assert row.gpu_model == "L40S" and row.utilisation == D("0.75")
    assert row.on_demand is None and row.spot is None and row.committed is None and row.break_even == ()
    assert row.energy.usd_per_gpu_hour == D("0.105")
    assert round(row.onprem_usd_per_used_gpu_hour, 9) == D("1.018242009")
    assert "Cloud: no instance price in force carries L40S." in row.notes


def test_zero_utilisation(world):
    """Every GPU-hour idle: u = 0, so an owned GPU does no work and has no cost per used hour; the break-even
    utilisation still stands (it does not depend on u), owning is not cheaper and never pays back."""
    LedgerDay.objects.update(idle_gpu_hours=F("gpu_hours"))
    row = the_row(answer_for())
    assert row.utilisation == 0 and row.measured_utilisation_pct == 0
    assert row.onprem_usd_per_used_gpu_hour is None
    # No used hour to measure energy on: estimated as 700 W × 0.7 × PUE 1.4 = 0.686 kWh.
    assert (row.energy.kwh_per_gpu_hour, row.energy.kwh_basis) == (D("0.686"), "estimated")
    od = row.versus_on_demand
    assert od.utilisation is not None and od.onprem_cheaper is False and od.months is None
    assert od.saving_usd_per_month == D("-312.5")  # 0 hours saved − 3,750 / 12 operations


def test_a_model_nobody_has(world):
    """L4 is priced (AWS g6.xlarge $0.8048 for 1 GPU) but the fleet has none: no utilisation to compare and no
    cost model; with a what-if utilisation and purchase it compares: 40 %, $2,500 over 48 months, $0 ops:
    B = 2,500 / 35,040 = 0.071347032; energy estimated 72 W × 0.7 × 1.5 (assumed PUE) = 0.0756 kWh × $0.10
    = 0.00756; u* = 0.071347032 / (0.8048 − 0.00756) = 0.089493."""
    price("aws", "us-east-1", "g6.xlarge", "0.8048", None, gpu_model="L4", gpu_count=1)
    row = the_row(answer_for(gpu_model="L4"))
    assert row.usage == buyrent.ModelUsage() and row.utilisation is None and row.onprem is None
    assert row.on_demand.usd_per_gpu_hour == D("0.8048") and row.spot is None
    assert row.committed.basis == "commitment"  # the savings plan covers every AWS instance type
    assert any(note.startswith("Utilisation: the fleet has no L4") for note in row.notes)

    what_if = buyrent.WhatIf(utilisation_pct=D(40), purchase_usd_per_gpu=D(2500))
    row = the_row(answer_for(gpu_model="L4", what_if=what_if))
    assert row.energy.kwh_basis == "estimated" and row.energy.usd_per_gpu_hour == D("0.00756")
    assert round(row.versus_on_demand.utilisation, 6) == D("0.089493")
    assert row.versus_on_demand.onprem_cheaper is True


def test_the_assumed_savings_plan_without_a_commitment(world):
    """With no commitment, committed = the cheapest on-demand 11.00 less BUY_VS_RENT_SAVINGS_PLAN_PCT (25 % here)
    = 8.25, labelled an assumption."""
    Commitment.objects.all().delete()
    with override_settings(BUY_VS_RENT_SAVINGS_PLAN_PCT=25):
        answer = answer_for()
    row = the_row(answer)
    assert answer.savings_plan_pct == 25
    assert (row.committed.usd_per_gpu_hour, row.committed.basis, row.committed.discount_pct) == (
        D("8.25"),
        "assumption",
        25,
    )
    assert any(note.startswith("Commitments: none in force covers H100") for note in row.notes)


def test_only_commitments_in_force_today_count(world):
    """Moved to end before today, neither commitment counts: the committed price is the assumption."""
    Commitment.objects.update(start=date(2025, 3, 1), end=TODAY)
    assert the_row(answer_for()).committed.basis == "assumption"


def test_every_model_of_the_window_most_used_first_and_nvml_names(world):
    ledger_day(day=date(2026, 3, 5), site=world["onprem_site"], gpu_model="NVIDIA A100-SXM4-40GB")
    answer = answer_for(gpu_model="")
    assert [row.gpu_model for row in answer.rows] == ["H100", "A100-40GB"]  # 32 GPU-h, then 24
    assert the_row(answer_for(gpu_model=H100_NVML)).gpu_model == "H100"
    # A window without the ledger days: no rows at all.
    assert answer_for(gpu_model="", start=date(2026, 2, 1), end=date(2026, 3, 1)).rows == []


def test_team_scope(world):
    """A team sees the utilisation of its own GPUs only; [] is nothing at all."""
    other = TeamFactory()
    ledger_day(day=date(2026, 3, 5), site=world["onprem_site"], team=other, idle_gpu_hours=D(24))
    assert the_row(answer_for()).utilisation == D(24) / D(56)  # 1 − 32 / 56 (both teams)
    assert the_row(answer_for(teams=[world["team"].pk])).utilisation == D("0.75")
    assert the_row(answer_for(teams=[other.pk])).utilisation == 0
    scoped = the_row(answer_for(teams=[]))
    assert scoped.usage.gpu_hours == 0 and scoped.utilisation is None
    assert answer_for(gpu_model="", teams=[]).rows == []


def test_unknown_models_and_prices_without_a_model_are_refused(world):
    with pytest.raises(buyrent.BuyRentError) as error:
        answer_for(gpu_model="Voodoo 5")
    assert error.value.field == "gpu_model" and "Unknown GPU model 'Voodoo 5'" in error.value.message
    with pytest.raises(buyrent.BuyRentError) as error:
        answer_for(gpu_model="", what_if=buyrent.WhatIf(purchase_usd_per_gpu=D(1)))
    assert error.value.field == "gpu_model"


def test_queries_do_not_grow_with_the_fleet(world, django_assert_max_num_queries):
    for day in range(3, 9):
        ledger_day(day=date(2026, 3, day), site=world["onprem_site"], gpu_model="NVIDIA A100-SXM4-40GB")
        ledger_day(day=date(2026, 3, day), site=SiteFactory(provider=ProviderFactory()), gpu_model="NVIDIA L4")
    with django_assert_max_num_queries(5):
        answer = answer_for(gpu_model="")
    assert len(answer.rows) == 3


def test_window_defaults():
    assert buyrent.window_resolve(first=None, last=None, today=TODAY) == (date(2026, 2, 14), TODAY)
    assert buyrent.window_resolve(first=date(2026, 3, 1), last=None, today=TODAY) == (date(2026, 3, 1), TODAY)
    assert buyrent.window_resolve(first=None, last=date(1970, 1, 5), today=TODAY) == (
        date(1970, 1, 1),
        date(1970, 1, 5),
    )
    assert buyrent.utilisation_problem(D(0)) and buyrent.utilisation_problem(D("100.01"))
    assert buyrent.utilisation_problem(D(100)) is None
