"""Buy vs rent API (billing/api/buyrent.py): the hand-checked H100 row as JSON, the what-if overrides, bad input of
every parameter → 400 naming the field with a clear message, the team scope and the OpenAPI schema."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing import selectors
from core.choices import Role
from tests.billing.test_buyrent import TODAY, world  # noqa: F401 - the fixture
from tests.factories import TeamFactory

D = Decimal
URL = "/api/v1/spend/buy-vs-rent/"
WINDOW = {"from": "2026-03-01", "to": "2026-03-14"}


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    """Prices, commitments and cost models in force on 15 March 2026 (as in test_buyrent)."""
    monkeypatch.setattr(selectors, "utc_today", lambda: TODAY)


def test_the_h100_row(admin_api, world):  # noqa: F811
    """The figures of test_buyrent.test_h100_break_even_hand_checked, as the API writes them."""
    response = admin_api.get(URL, {**WINDOW, "gpu_model": "H100"})
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["from"], data["to"], D(data["savings_plan_pct"])) == ("2026-03-01", "2026-03-14", D(30))
    (row,) = data["rows"]
    assert row["gpu_model"] == "H100" and row["utilisation_basis"] == "measured"
    assert D(row["measured_utilisation_pct"]) == D(row["utilisation_pct"]) == D(75)
    assert D(row["usage"]["gpu_hours"]) == 32 and D(row["usage"]["onprem_idle_gpu_hours"]) == 4
    assert (D(row["on_demand"]["usd_per_gpu_hour"]), row["on_demand"]["provider_kind"]) == (D(11), "gcp")
    assert D(row["spot"]["usd_per_gpu_hour"]) == D(3)
    assert (D(row["committed"]["usd_per_gpu_hour"]), row["committed"]["commitment"]) == (D("7.374"), "sp-1")
    assert D(row["onprem"]["usd_per_owned_gpu_hour"]) == D("1.498288")
    assert (D(row["energy"]["kwh_per_gpu_hour"]), row["energy"]["kwh_basis"]) == (D("0.98"), "measured")
    assert D(row["onprem_usd_per_used_gpu_hour"]) == D("2.115317")
    versus = {b["versus"]: b for b in row["break_even"]}
    assert list(versus) == ["on-demand", "spot", "commitments"]
    assert (D(versus["on-demand"]["utilisation_pct"]), D(versus["on-demand"]["months"])) == (D("13.77"), D("6.64"))
    assert D(versus["on-demand"]["saving_usd_per_month"]) == D("5645.614")
    assert (D(versus["spot"]["utilisation_pct"]), D(versus["spot"]["months"])) == (D("51.98"), D("29.63"))
    assert versus["commitments"]["onprem_cheaper"] is True and row["notes"] == []


def test_every_model_by_default_and_the_default_window(admin_api, world):  # noqa: F811
    data = admin_api.get(URL).json()
    assert (data["from"], data["to"]) == ("2026-02-14", "2026-03-15")  # the 30 days up to today
    assert [r["gpu_model"] for r in data["rows"]] == ["H100"]
    assert admin_api.get(URL, {"from": "2026-03-03"}).json()["rows"] == []  # after the ledger's day


def test_what_if_overrides(admin_api, world):  # noqa: F811
    """test_buyrent.test_what_if_figures_replace_the_fleets through the API: u* 10.57 %, 7.61 months."""
    params = {
        **WINDOW,
        "gpu_model": "NVIDIA H100 80GB HBM3",  # an NVML name means its catalogue key
        "purchase_usd_per_gpu": "30000",
        "amortisation_months": "36",
        "ops_usd_per_gpu_year": "0",
        "utilisation": "50",
        "usd_per_kwh": "0.20",
    }
    (row,) = admin_api.get(URL, params).json()["rows"]
    assert row["gpu_model"] == "H100" and row["utilisation_basis"] == "what-if"
    assert (D(row["utilisation_pct"]), D(row["measured_utilisation_pct"])) == (D(50), D(75))
    assert row["onprem"]["basis"] == "what-if" and row["energy"]["price_basis"] == "what-if"
    od = row["break_even"][0]
    assert (od["versus"], D(od["utilisation_pct"]), D(od["months"])) == ("on-demand", D("10.57"), D("7.61"))
    # An empty what-if field (a form sent as is) keeps the fleet's figure.
    (row,) = admin_api.get(URL, {**WINDOW, "utilisation": "", "purchase_usd_per_gpu": ""}).json()["rows"]
    assert row["utilisation_basis"] == "measured" and row["onprem"]["basis"] == "cost-model"


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"from": "2026-02-30"}, "from", "YYYY-MM-DD"),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "to", "before the start"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "to", "at most 400 days"),
        ({"to": "0001-01-01"}, "to", "between"),
        ({"team": "abc"}, "team", ""),
        ({"gpu_model": "Voodoo 5"}, "gpu_model", "Unknown GPU model"),
        ({"gpu_model": "H100\nX"}, "gpu_model", ""),
        ({"gpu_model": "x" * 101}, "gpu_model", "100 characters"),
        ({"purchase_usd_per_gpu": "100"}, "gpu_model", "choose the model"),
        ({"ops_usd_per_gpu_year": "100"}, "gpu_model", "choose the model"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "-1"}, "purchase_usd_per_gpu", "cannot be negative"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "1e3"}, "purchase_usd_per_gpu", "ASCII digits"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "NaN"}, "purchase_usd_per_gpu", "ASCII digits"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "١٢"}, "purchase_usd_per_gpu", "ASCII digits"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "12345678901"}, "purchase_usd_per_gpu", "10 digits"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "1.001"}, "purchase_usd_per_gpu", "2 decimal places"),
        ({"amortisation_months": "0"}, "amortisation_months", "at least 1 month"),
        ({"amortisation_months": "241"}, "amortisation_months", "240"),
        ({"amortisation_months": "4.5"}, "amortisation_months", "whole number"),
        ({"amortisation_months": "+48"}, "amortisation_months", "whole number"),
        ({"gpu_model": "H100", "ops_usd_per_gpu_year": "-0.01"}, "ops_usd_per_gpu_year", "cannot be negative"),
        ({"utilisation": "0"}, "utilisation", "above 0 %"),
        ({"utilisation": "100.5"}, "utilisation", "at most 100 %"),
        ({"utilisation": "-5"}, "utilisation", "above 0 %"),
        ({"utilisation": "fifty"}, "utilisation", "ASCII digits"),
        ({"usd_per_kwh": "-0.1"}, "usd_per_kwh", "cannot be negative"),
        ({"usd_per_kwh": "11"}, "usd_per_kwh", "10"),
        ({"usd_per_kwh": "Infinity"}, "usd_per_kwh", "ASCII digits"),
    ],
)
def test_bad_params_are_400_naming_the_field(admin_api, world, params, field, words):  # noqa: F811
    response = admin_api.get(URL, params)
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert words in " ".join(errors[field]), errors


def test_team_scope(api_client, world):  # noqa: F811
    """A viewer in the world's team sees its utilisation (75 %); a viewer of another team sees no GPU-hours and
    may not ask for the world's team."""
    member = api_client(Role.VIEWER)
    world["team"].members.add(member.user)
    (row,) = member.get(URL, WINDOW).json()["rows"]
    assert D(row["measured_utilisation_pct"]) == 75

    outsider = api_client(Role.VIEWER)
    other = TeamFactory()
    other.members.add(outsider.user)
    assert outsider.get(URL, WINDOW).json()["rows"] == []
    (row,) = outsider.get(URL, {**WINDOW, "gpu_model": "H100"}).json()["rows"]
    assert row["measured_utilisation_pct"] is None and D(row["usage"]["gpu_hours"]) == 0
    assert outsider.get(URL, {**WINDOW, "team": world["team"].pk}).status_code == 403


def test_needs_authentication(client, db):
    assert client.get(URL).status_code in (401, 403)


def test_in_the_openapi_schema(admin_api):
    schema = admin_api.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    operation = schema.json()["paths"][URL]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"from", "to", "team", "gpu_model", "purchase_usd_per_gpu", "utilisation", "usd_per_kwh"} <= names
