"""The FOCUS export (billing/focus/export.py, GET /api/v1/spend/focus.csv): its rows and figures for a ledger worked
by hand (tests/billing/focus_world.py), the BilledCost sum against spend_totals, team scope, formula-looking names
neutralised, period errors, streaming and a constant number of queries."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import selectors
from billing.focus.columns import EXPORT_HEADER, focus_row_problems
from billing.focus.export import focus_export_csv
from core.choices import Role
from tests.billing.focus_world import DAY1, DAY1_USD, DAY2, DAY2_USD, HOSTILE_NAME, TOTAL_USD, at, entry, focus_world
from tests.factories import NodeFactory, SiteFactory

pytestmark = pytest.mark.django_db

D = Decimal
URL = "/api/v1/spend/focus.csv"
PERIOD = {"from": "2026-03-01", "to": "2026-03-31"}


def rows_of(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == EXPORT_HEADER
    return list(reader)


def billed(rows) -> Decimal:
    return sum((D(r["BilledCost"]) for r in rows), D(0))


@pytest.fixture
def world(db):
    return focus_world()


def test_billed_cost_adds_up_to_spend_totals(admin_api, world):
    rows = rows_of(admin_api.get(URL, PERIOD))
    totals = selectors.spend_totals(start=date(2026, 3, 1), end=date(2026, 4, 1))
    assert billed(rows) == totals.total_usd == TOTAL_USD == D("926.884202")
    assert billed(r for r in rows if r["ChargePeriodStart"] == "2026-03-02T00:00:00Z") == DAY1_USD
    assert billed(r for r in rows if r["ChargePeriodStart"] == "2026-03-03T00:00:00Z") == DAY2_USD
    assert all(r["EffectiveCost"] == r["BilledCost"] for r in rows)
    assert [focus_row_problems(r) for r in rows] == [[]] * len(rows)


def test_one_day_period(admin_api, world):
    rows = rows_of(admin_api.get(URL, {"from": "2026-03-03", "to": "2026-03-03"}))
    assert billed(rows) == DAY2_USD == selectors.spend_totals(start=DAY2, end=DAY2 + timedelta(days=1)).total_usd
    assert {r["ChargePeriodStart"] for r in rows} == {"2026-03-03T00:00:00Z"}
    assert {r["ChargePeriodEnd"] for r in rows} == {"2026-03-04T00:00:00Z"}
    assert {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in rows} == {
        ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
    }


def test_rows_say_what_each_charge_is(admin_api, world):
    rows = rows_of(admin_api.get(URL, PERIOD))
    by_resource = {}
    for row in rows:
        by_resource.setdefault(row["ResourceId"], []).append(row)
    assert len(rows) == 9  # p5, p5b, spot × 2 days, a3 × 2 shares, owned: compute + energy, the unused RI
    (covered,) = by_resource["i-0p5"]
    assert (covered["PricingCategory"], covered["CommitmentDiscountStatus"]) == ("Committed", "Used")
    assert (D(covered["BilledCost"]), D(covered["ListCost"]), D(covered["ContractedCost"])) == (
        60,
        D("110.08"),
        D("110.08"),
    )
    assert (covered["CommitmentDiscountCategory"], covered["CommitmentDiscountType"]) == ("Usage", "Reserved instances")
    assert covered["CommitmentDiscountId"] == f"fleetdeck-commitment-{world.commitment.pk}"
    assert covered["CommitmentDiscountName"] == "'@ri-p5"  # a formula-looking name is neutralised
    assert (D(covered["PricingQuantity"]), covered["PricingUnit"], D(covered["ListUnitPrice"])) == (
        2,
        "Hours",
        D("55.04"),
    )
    assert D(covered["x_FleetdeckCoveredCost"]) == 60
    assert json.loads(covered["Tags"]) == {
        "gpu_model": "NVIDIA H100 80GB HBM3", "project": "alpha/train", "site": "aws-use1", "team": "alpha"
    }  # fmt: skip
    assert (covered["ProviderName"], covered["BillingAccountId"], covered["SubAccountId"]) == (
        "AWS", "111111111111", "111111111111"
    )  # fmt: skip
    assert (covered["ServiceName"], covered["ServiceCategory"], covered["ChargeCategory"]) == (
        "Amazon Elastic Compute Cloud", "Compute", "Usage"
    )  # fmt: skip
    (on_demand,) = by_resource["i-0p5b"]
    assert (on_demand["PricingCategory"], on_demand["CommitmentDiscountId"], D(on_demand["BilledCost"])) == (
        "Standard", "", D("55.04")
    )  # fmt: skip
    spot = by_resource["i-0spot"]
    assert [(r["PricingCategory"], D(r["BilledCost"])) for r in spot] == [("Dynamic", 25), ("Dynamic", D("12.5"))]
    assert (D(spot[0]["x_FleetdeckIdleGpuHours"]), D(spot[0]["x_FleetdeckIdleCost"])) == (4, D("6.25"))
    assert (D(spot[1]["x_FleetdeckBrokenGpuHours"]), D(spot[1]["x_FleetdeckBrokenCost"])) == (1, D("1.5625"))
    shares = by_resource["a3-vm-1"]
    assert [(json.loads(r["Tags"])["team"], D(r["BilledCost"]), D(r["PricingQuantity"])) for r in shares] == [
        ("alpha", D("66.3675"), D("0.75")),
        ("beta", D("22.1225"), D("0.25")),
    ]
    assert [D(r["x_FleetdeckCo2eKg"]) for r in shares] == [D("1.68"), D("0.56")]
    assert shares[0]["ProviderName"] == "Google Cloud" and shares[0]["ServiceName"] == "Compute Engine"
    owned = by_resource[f"fleetdeck-node-{world.nodes['owned'].pk}"]
    assert [(r["ServiceName"], r["PricingUnit"], D(r["PricingQuantity"]), D(r["BilledCost"])) for r in owned] == [
        ("On-Prem GPU Servers", "Hours", 2, D("23.972602")),
        ("On-Prem Energy", "kWh", D("15.68"), D("1.8816")),
    ]
    assert D(owned[1]["ListUnitPrice"]) == D("0.12")
    assert [D(r["x_FleetdeckCo2eKg"]) for r in owned] == [0, D("6.272")]
    assert owned[0]["BillingAccountId"] == f"fleetdeck-{world.onprem.name}"
    (unused,) = by_resource[f"fleetdeck-commitment-{world.commitment.pk}"]
    assert (unused["CommitmentDiscountStatus"], unused["ChargeFrequency"], unused["PricingCategory"]) == (
        "Unused", "Recurring", "Committed"
    )  # fmt: skip
    assert (D(unused["BilledCost"]), D(unused["ListCost"]), D(unused["PricingQuantity"])) == (660, 0, 22)
    assert json.loads(unused["Tags"]) == {"team": "alpha"}


def test_formula_looking_names_are_neutralised(admin_api, world):
    rows = rows_of(admin_api.get(URL, PERIOD))
    names = {r["ResourceName"] for r in rows}
    assert "'" + HOSTILE_NAME in names and HOSTILE_NAME not in names
    assert not [r for r in rows for value in r.values() if value[:1] in ("=", "+", "@", "\t", "\r")]


def test_team_scope(api_client, world):
    viewer = api_client(Role.VIEWER)
    world.beta.members.add(viewer.user)
    rows = rows_of(viewer.get(URL, PERIOD))
    beta = selectors.spend_totals(start=date(2026, 3, 1), end=date(2026, 4, 1), teams=[world.beta.pk])
    # spot 25 + 12.5, a3's beta share 22.1225, the owned node 25.854202; the RI's unused part is alpha's
    assert billed(rows) == beta.total_usd == D("85.476702")
    assert {json.loads(r["Tags"])["team"] for r in rows} == {"beta"}
    assert viewer.get(URL, {**PERIOD, "team": world.alpha.pk}).status_code == 403


def test_team_filter_for_operators(api_client, world):
    operator = api_client(Role.OPERATOR)
    rows = rows_of(operator.get(URL, {**PERIOD, "team": world.alpha.pk}))
    alpha = selectors.spend_totals(start=date(2026, 3, 1), end=date(2026, 4, 1), teams=[world.alpha.pk])
    assert billed(rows) == alpha.total_usd == D("60") + D("55.04") + D("660") + D("66.3675")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"from": "2026-03-05", "to": "2026-03-01"}, "to"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, "to"),
        ({"from": "2026-13-01", "to": "2026-03-01"}, "from"),
        ({"from": "0001-01-01", "to": "2026-03-01"}, "from"),
    ],
)
def test_bad_periods_are_refused_as_json(admin_api, world, params, field):
    response = admin_api.get(URL, params, HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert field in response.json()


def test_needs_authentication(client, world):
    assert client.get(URL, PERIOD).status_code in (401, 403)


def test_csv_accept_header(admin_api, world):
    response = admin_api.get(URL, PERIOD, HTTP_ACCEPT="text/csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="focus-2026-03-01-2026-03-31.csv"'
    assert billed(rows_of(response)) == TOTAL_USD


def export_queries(day: date) -> int:
    with CaptureQueriesContext(connection) as queries:
        text = "".join(focus_export_csv(start=day, end=day + timedelta(days=1)))
    assert text.count("\n") > 1
    return len(queries)


def test_query_count_does_not_grow_with_rows(world):
    site = SiteFactory(name="aws-more", provider=world.aws)
    few = export_queries(DAY1)
    for i in range(30):
        entry(NodeFactory(site=site, name=f"more-{i}"), at(DAY1, 3), rate="1")
    assert export_queries(DAY1) == few == 2


def test_streamed_in_chunks(world, monkeypatch):
    monkeypatch.setattr("billing.focus.export.FLUSH_ROWS", 2)
    chunks = list(focus_export_csv(start=DAY1, end=DAY2 + timedelta(days=1)))
    assert len(chunks) >= 4
    assert billed(csv.DictReader(io.StringIO("".join(chunks)))) == TOTAL_USD


def test_nothing_for_an_empty_scope(world):
    assert "".join(focus_export_csv(start=DAY1, end=DAY2, teams=[])).strip() == ",".join(EXPORT_HEADER)
