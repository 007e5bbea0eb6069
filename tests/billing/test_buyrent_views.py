"""The buy-vs-rent page (billing/views/buyrent.py): the hand-checked H100 row rendered, the what-if form as an HTMX
partial, bad form input shown as errors (nothing computed), hostile names escaped, the team scope and the nav."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import selectors
from core.choices import Role
from fleet.choices import NodeLifecycle
from tests.billing.test_buyrent import TODAY, world  # noqa: F401 - the fixture
from tests.billing.test_selectors import ledger_day
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db

D = Decimal
HTMX = {"HTTP_HX_REQUEST": "true"}
WINDOW = {"date_from": "2026-03-01", "date_to": "2026-03-14"}
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(selectors, "utc_today", lambda: TODAY)


@pytest.fixture
def viewer(client, make_user):
    client.force_login(make_user(Role.VIEWER))
    return client


def test_page_shows_the_hand_checked_row(viewer, world):  # noqa: F811
    """The figures of test_buyrent.test_h100_break_even_hand_checked, rounded for display."""
    response = viewer.get(reverse("buy-vs-rent"), WINDOW)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Buy vs rent</h1>" in html and 'aria-current="page">Buy vs rent' in html
    assert 'data-testid="buyrent-row-h100"' in html and 'data-testid="form-errors"' not in html
    row = html.split('data-testid="buyrent-row-h100"')[1].split("</tr>")[0]
    # utilisation, on-demand, spot, committed, on-prem per used GPU-h, break-evens, months
    for figure in ("75.0", "11.00", "3.00", "7.37", "2.12", "13.8", "20.6", "6.6"):
        assert f'<td class="num">{figure}' in row, (figure, row)
    card = html.split('data-testid="buyrent-model-h100"')[1].split("</section>")[0]
    assert "$1.4983/owned GPU-h" in card and "0.980 kWh per used GPU-h (measured)" in card
    assert "Break-even vs spot" in card and "buying pays back in 29.6 months" in card
    assert "sp-1 (40.00 % off)" in card


def test_default_page_is_the_last_30_days(viewer, world):  # noqa: F811
    html = viewer.get(reverse("buy-vs-rent")).content.decode()
    assert "measured 2026-02-14 – 2026-03-15" in html and 'data-testid="buyrent-row-h100"' in html


def test_what_if_form_answers_an_htmx_partial(viewer, world):  # noqa: F811
    """The what-if of test_buyrent.test_what_if_figures_replace_the_fleets: 50 %, u* 10.57 %, 7.6 months."""
    params = {
        **WINDOW,
        "gpu_model": "H100",
        "purchase_usd_per_gpu": "30000",
        "amortisation_months": "36",
        "ops_usd_per_gpu_year": "0",
        "utilisation": "50",
        "usd_per_kwh": "0.20",
    }
    response = viewer.get(reverse("buy-vs-rent"), params, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="buyrent-results">') and "<html" not in html
    row = html.split('data-testid="buyrent-row-h100"')[1].split("</tr>")[0]
    assert "50.0 (what-if)" in row and '<td class="num">10.6' in row and '<td class="num">7.6' in row
    assert "what-if" in html.split('data-testid="buyrent-model-h100"')[1]


@pytest.mark.parametrize(
    ("params", "label", "words"),
    [
        ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "To", "before the start"),
        ({"date_from": "not a day"}, "From", "valid date"),
        ({"gpu_model": "Voodoo 5"}, "GPU model", "Unknown GPU model"),
        ({"purchase_usd_per_gpu": "1000"}, "GPU model", "choose the model"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "-5"}, "Purchase $ per GPU", "cannot be negative"),
        ({"gpu_model": "H100", "purchase_usd_per_gpu": "1e3"}, "Purchase $ per GPU", "ASCII digits"),
        ({"amortisation_months": "0"}, "Amortisation (months)", "at least 1 month"),
        ({"amortisation_months": "48.0"}, "Amortisation (months)", "whole number"),
        ({"gpu_model": "H100", "ops_usd_per_gpu_year": "-1"}, "Operations $ per GPU-year", "cannot be negative"),
        ({"utilisation": "0"}, "Utilisation %", "above 0 %"),
        ({"utilisation": "101"}, "Utilisation %", "at most 100 %"),
        ({"utilisation": "NaN"}, "Utilisation %", "ASCII digits"),
        ({"usd_per_kwh": "-0.01"}, "Electricity $/kWh", "cannot be negative"),
        ({"usd_per_kwh": "20"}, "Electricity $/kWh", "10"),
    ],
)
def test_bad_form_input_shows_errors(viewer, world, params, label, words):  # noqa: F811
    page = viewer.get(reverse("buy-vs-rent"), params)
    assert page.status_code == 400
    partial = viewer.get(reverse("buy-vs-rent"), params, **HTMX)
    assert partial.status_code == 200  # htmx swaps only 2xx answers; the partial shows the errors
    for html in (page.content.decode(), partial.content.decode()):
        errors = html.split('data-testid="form-errors"')[1].split("</div>")[0]
        assert label in errors and words in errors.replace("&#x27;", "'"), errors
        assert 'data-testid="buyrent-summary"' not in html  # nothing computed


def test_hostile_names_are_escaped(viewer, world):  # noqa: F811
    """A GPU model name from an agent and a typed model name are shown as text, never as markup."""
    ledger_day(day=date(2026, 3, 3), site=world["onprem_site"], gpu_model=HOSTILE, lifecycle=NodeLifecycle.OWNED)
    html = viewer.get(reverse("buy-vs-rent"), WINDOW).content.decode()
    assert HOSTILE not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    html = viewer.get(reverse("buy-vs-rent"), {**WINDOW, "gpu_model": HOSTILE + "2"}).content.decode()
    assert "<script>alert" not in html and "Unknown GPU model" in html


def test_a_scoped_viewer_sees_only_its_teams(client, make_user, world):  # noqa: F811
    user = make_user(Role.VIEWER)
    TeamFactory().members.add(user)  # a team with no GPU-hours
    client.force_login(user)
    html = client.get(reverse("buy-vs-rent"), WINDOW).content.decode()
    assert 'data-testid="scope-note"' in html and "No GPU-hours in this window for your teams" in html
    world["team"].members.add(user)
    html = client.get(reverse("buy-vs-rent"), WINDOW).content.decode()
    assert 'data-testid="buyrent-row-h100"' in html


def test_anonymous_is_sent_to_login(client, db):
    response = client.get(reverse("buy-vs-rent"))
    assert response.status_code == 302 and "login" in response["Location"]
