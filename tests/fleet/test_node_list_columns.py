"""The node list's figure columns: utilisation and power of the online GPUs, $ of the last complete ledger hour
(in the viewer's team scope), health (the worst open broken event); sortable, filterable, escaped, no N+1."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.ledger import HOUR, hour_floor
from fleet.choices import HealthEventKind
from fleet.models import GPU, HealthEvent
from tests.billing.test_selectors import ledger_entry
from tests.factories import GPUFactory, NodeFactory, TeamFactory

pytestmark = pytest.mark.django_db


def reading(gpu, *, util, power, age=timedelta(0)):
    GPU.objects.filter(pk=gpu.pk).update(sampled_at=timezone.now() - age, util_pct=util, power_w=power)


def event(gpu, kind, *, resolved=False):
    now = timezone.now()
    return HealthEvent.objects.create(
        gpu=gpu, node=gpu.node, occurred_at=now - timedelta(hours=1), kind=kind, resolved_at=now if resolved else None
    )


@pytest.fixture
def nodes():
    """busy: GPUs at 40 % / 300 W and 60 % / 450 W now, and a stale one (2 h old, 100 %, 700 W) left out → 50.0 %,
    750 W; $1,234.565 in the last complete hour (and $99 in the current, $5 the hour before: not shown); an open
    XID event. lost: an open XID and an open GPU-lost event (the worse), 10 %; $2.00 + $0.25 energy, team Beta.
    fine: a resolved double-bit ECC event and an open single-bit one (corrected): ok; 90 %, no ledger row."""
    alpha, beta = TeamFactory(name="Alpha"), TeamFactory(name="Beta")
    current = hour_floor(timezone.now())
    busy = NodeFactory(name="busy", team=alpha)
    b0, b1, b2 = (GPUFactory(node=busy, index=i) for i in range(3))
    reading(b0, util=40, power=300)
    reading(b1, util=60, power=450)
    reading(b2, util=100, power=700, age=timedelta(hours=2))
    event(b0, HealthEventKind.XID)
    ledger_entry(node=busy, hour=current - HOUR, compute="1234.565")
    ledger_entry(node=busy, hour=current, compute="99")
    ledger_entry(node=busy, hour=current - 2 * HOUR, compute="5")
    lost = NodeFactory(name="lost", team=beta)
    l0 = GPUFactory(node=lost, index=0)
    reading(l0, util=10, power=100)
    event(l0, HealthEventKind.XID)
    event(l0, HealthEventKind.GPU_LOST)
    ledger_entry(node=lost, hour=current - HOUR, compute="2", energy="0.25")
    fine = NodeFactory(name="fine")
    f0 = GPUFactory(node=fine, index=0)
    reading(f0, util=90, power=650)
    event(f0, HealthEventKind.ECC_DBE, resolved=True)
    event(f0, HealthEventKind.ECC_SBE)
    return {"alpha": alpha, "beta": beta, "busy": busy, "lost": lost, "fine": fine}


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


def rows(response) -> dict:
    return {n.name: n for n in response.context["page"]}


def test_the_columns_carry_hand_checked_figures(admin_client, nodes):
    response = admin_client.get(reverse("node-list"))
    by_name = rows(response)
    busy, lost, fine = by_name["busy"], by_name["lost"], by_name["fine"]
    assert (busy.util_pct, busy.power_w, busy.gpu_count) == (50.0, 750.0, 3)  # the join is not multiplied
    assert (lost.util_pct, fine.util_pct) == (10.0, 90.0)
    assert str(busy.hour_usd) == "1234.565000" and str(lost.hour_usd) == "2.250000" and fine.hour_usd is None
    assert (busy.health, lost.health, fine.health) == ("XID error", "GPU lost", None)
    html = response.content.decode()
    assert '<td class="num" data-col="util">50.0 %</td>' in html
    assert '<td class="num" data-col="power">750</td>' in html
    assert '<td class="num" data-col="cost">$1,234.57</td>' in html  # half up, thousands separator
    assert '<td class="num" data-col="cost">$2.25</td>' in html and '<td class="num" data-col="cost">—</td>' in html
    assert ">GPU lost</a>" in html and '<span class="badge ok">ok</span>' in html
    for label in ("Utilisation", "Power (W)", "$ last hour", "Health"):
        assert f">{label}</a></th>" in html


def test_the_cost_column_is_in_the_viewers_team_scope(client, make_user, nodes):
    viewer = make_user("viewer")
    nodes["beta"].members.add(viewer)
    client.force_login(viewer)
    response = client.get(reverse("node-list"))
    by_name = rows(response)
    assert by_name["busy"].hour_usd is None  # Alpha's node: its $ is not Beta's to see
    assert str(by_name["lost"].hour_usd) == "2.250000"
    assert "your teams' nodes only" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"health": "unhealthy"}, ["busy", "lost"]),
        ({"health": "ok"}, ["fine"]),
        ({"util_max": "50"}, ["busy", "lost"]),
        ({"util_max": "10", "health": "unhealthy"}, ["lost"]),
        ({"ordering": "util"}, ["lost", "busy", "fine"]),
        ({"ordering": "-power"}, ["busy", "fine", "lost"]),
        ({"ordering": "-cost"}, ["busy", "lost", "fine"]),  # no ledger row: last, either way
        ({"ordering": "cost"}, ["lost", "busy", "fine"]),
        ({"ordering": "-health"}, ["lost", "busy", "fine"]),
    ],
)
def test_filters_and_sorting_by_the_new_columns(admin_client, nodes, query, expected):
    response = admin_client.get(reverse("node-list"), query)
    assert response.status_code == 200 and not response.context["filterset"].errors
    assert [n.name for n in response.context["page"]] == expected


def test_sort_links_of_the_new_columns_flip(admin_client, nodes):
    response = admin_client.get(reverse("node-list"), {"ordering": "cost"})
    links = {link["key"]: link for link in response.context["sort_links"]}
    assert links["cost"]["active"] and not links["cost"]["descending"]
    assert "ordering=-cost" in links["cost"]["href"] and "ordering=util" in links["util"]["href"]


def test_a_bad_health_or_utilisation_filter_is_reported(admin_client, nodes):
    response = admin_client.get(reverse("node-list"), {"health": "<b>melted</b>", "util_max": "lots"})
    assert response.status_code == 200
    errors = response.context["filterset"].errors
    assert set(errors) == {"health", "util_max"}
    html = response.content.decode()
    assert "Some filters were not understood" in html and "<b>melted</b>" not in html


def test_hostile_node_names_are_escaped_in_the_rows(admin_client, db):
    node = NodeFactory(name='<img src=x onerror="alert(1)">')
    gpu = GPUFactory(node=node, index=0)
    reading(gpu, util=75, power=500)
    event(gpu, HealthEventKind.ECC_DBE)
    ledger_entry(node=node, hour=hour_floor(timezone.now()) - HOUR, compute="12.345")
    html = admin_client.get(reverse("node-list"), {"health": "unhealthy"}).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "ECC double-bit errors</a>" in html and "$12.35" in html and "75.0 %" in html


def _fleet(count: int) -> None:
    """``count`` nodes, each with two GPUs reporting, an open health event and a ledger hour."""
    hour = hour_floor(timezone.now()) - HOUR
    for _ in range(count):
        node = NodeFactory()
        g0, g1 = GPUFactory(node=node, index=0), GPUFactory(node=node, index=1)
        reading(g0, util=20, power=200)
        reading(g1, util=30, power=250)
        event(g1, HealthEventKind.XID)
        ledger_entry(node=node, hour=hour, compute="3")


def _queries(client, query) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("node-list"), query)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("query", [{}, {"ordering": "-cost", "health": "unhealthy"}])
def test_5_and_50_nodes_take_the_same_queries(admin_client, db, query):
    _fleet(5)
    admin_client.get(reverse("node-list"), query)
    five = _queries(admin_client, query)
    _fleet(45)
    fifty = _queries(admin_client, query)
    assert fifty == five
    page = admin_client.get(reverse("node-list"), query).context["page"]
    assert len(page) == 50 and all(n.util_pct == 25.0 and n.health == "XID error" for n in page)
