"""Team quotas through the API, the admin form, the model and the queue page: CRUD and permissions, one rule set
for contradictory settings, usage figures, the burst/reclaim scenario over HTTP, hostile team names."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.choices import Role
from fleet.models import Team
from scheduler.forms import TeamQuotaForm
from scheduler.models import Job, Placement, TeamQuota
from scheduler.placements import jobs_place
from tests.api_base import APIResourceTests
from tests.factories import TeamFactory
from tests.scheduler.conftest import onprem_node

pytestmark = pytest.mark.django_db

# The bad settings, each with the field it is refused on and the message (fleet: the scenario's 8 H100s).
CONTRADICTIONS = [
    ({"borrow_limit_gpus": -1}, "borrow_limit_gpus", "A borrow limit cannot be below zero (got -1)."),
    ({"guaranteed_gpus": -2}, "guaranteed_gpus", "A guarantee cannot be below zero (got -2)."),
    ({"weight": "0"}, "weight", "A fair-share weight must be above zero (got 0"),
    ({"weight": "-1.5"}, "weight", "A fair-share weight must be above zero (got -1.5"),
    ({"gpu_model": "Z9000"}, "gpu_model", "Unknown GPU model 'Z9000'"),
    (
        {"guaranteed_gpus": 5},
        "guaranteed_gpus",
        "Guarantees over the fleet: teams would be guaranteed 9 GPUs of H100 (5 here, 4 to other teams), "
        "but the fleet's existing nodes have 8.",
    ),
]


@pytest.fixture
def promised(scenario) -> TeamQuota:
    """Another team already guaranteed 4 of the scenario's 8 H100s."""
    return TeamQuota.objects.create(team=TeamFactory(name="other"), gpu_model="H100", guaranteed_gpus=4)


def quota_data(team: Team, **overrides) -> dict:
    data = {"team": team.pk, "gpu_model": "H100", "guaranteed_gpus": 2, "borrow_limit_gpus": 2, "weight": "1"}
    data.update(overrides)
    return data


class TestQuotaAPI(APIResourceTests):
    """CRUD, 401/403 (viewers read, operators and admins write), and 400 with a field for each bad setting
    (no fleet here: any guarantee above 0 is over the fleet)."""

    basename = "teamquota"
    model = TeamQuota
    compare_fields = ("gpu_model", "guaranteed_gpus", "borrow_limit_gpus")
    bad_payloads = [
        ({"borrow_limit_gpus": -1}, "borrow_limit_gpus"),
        ({"guaranteed_gpus": -1}, "guaranteed_gpus"),
        ({"guaranteed_gpus": 1}, "guaranteed_gpus"),
        ({"weight": "0"}, "weight"),
        ({"weight": "-2"}, "weight"),
        ({"gpu_model": "Z9000"}, "gpu_model"),
        ({"team": None}, "team"),
    ]

    def make(self, **kwargs):
        fields = {"team": TeamFactory(), "gpu_model": "H100", "borrow_limit_gpus": 4}
        fields.update(kwargs)
        return TeamQuota.objects.create(**fields)

    def create_payload(self):
        return {"team": TeamFactory().pk, "gpu_model": "H100", "guaranteed_gpus": 0, "borrow_limit_gpus": 4}

    def update_payload(self, instance):
        return {"borrow_limit_gpus": 6, "weight": "2.500"}

    def test_operator_writes(self, api_client):
        operator = api_client(Role.OPERATOR)
        response = operator.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 201, response.content
        assert response.data["weight"] == "1.000" and response.data["cap_gpus"] == 4

    def test_second_quota_of_a_team_and_model_is_refused(self, admin_api):
        quota = self.make()
        payload = {"team": quota.team_id, "gpu_model": "H100", "guaranteed_gpus": 0}
        response = admin_api.post(self.list_url(), payload, format="json")
        assert response.status_code == 400 and "non_field_errors" in response.data
        assert TeamQuota.objects.count() == 1


@pytest.mark.parametrize(("overrides", "field", "message"), CONTRADICTIONS)
def test_contradictory_settings_are_refused_by_api(promised, admin_api, overrides, field, message):
    before = list(TeamQuota.objects.values_list("pk", "guaranteed_gpus"))
    response = admin_api.post(reverse("api:teamquota-list"), quota_data(TeamFactory(), **overrides), format="json")
    assert response.status_code == 400, response.content
    assert str(response.data[field][0]).startswith(message), response.data
    assert list(TeamQuota.objects.values_list("pk", "guaranteed_gpus")) == before


@pytest.mark.parametrize(("overrides", "field", "message"), CONTRADICTIONS)
def test_contradictory_settings_are_refused_by_form(promised, overrides, field, message):
    form = TeamQuotaForm(data=quota_data(TeamFactory(), **overrides))
    assert not form.is_valid()
    if field == "gpu_model":  # the form offers the catalogue's models as choices
        message = "Select a valid choice. Z9000 is not one of the available choices."
    assert form.errors[field][0].startswith(message), form.errors
    assert TeamQuota.objects.count() == 1


@pytest.mark.parametrize(("overrides", "field", "message"), CONTRADICTIONS)
def test_contradictory_settings_are_refused_by_model(promised, overrides, field, message):
    data = quota_data(TeamFactory(), **overrides)
    quota = TeamQuota(team_id=data.pop("team"), **{k: (Decimal(v) if k == "weight" else v) for k, v in data.items()})
    with pytest.raises(ValidationError) as caught:
        quota.full_clean()
    assert caught.value.message_dict[field][0].startswith(message)


def test_guarantees_up_to_the_fleet_are_accepted_and_an_edit_counts_itself_once(promised, admin_api):
    """4 + 4 = 8 of 8 fits; raising the other team's own 4 to 8 would make 4 + 8 = 12 > 8."""
    response = admin_api.post(
        reverse("api:teamquota-list"), quota_data(TeamFactory(), guaranteed_gpus=4), format="json"
    )
    assert response.status_code == 201, response.content
    url = reverse("api:teamquota-detail", kwargs={"pk": promised.pk})
    assert admin_api.patch(url, {"guaranteed_gpus": 4}, format="json").status_code == 200
    refused = admin_api.patch(url, {"guaranteed_gpus": 8}, format="json")
    assert refused.status_code == 400 and "12 GPUs of H100" in str(refused.data["guaranteed_gpus"])
    assert TeamQuota.objects.get(pk=promised.pk).guaranteed_gpus == 4


def test_all_models_guarantee_is_checked_against_every_gpu(scenario):
    quota = TeamQuota(team=TeamFactory(), gpu_model="", guaranteed_gpus=9)
    with pytest.raises(ValidationError) as caught:
        quota.full_clean()
    assert "9 GPUs of all GPU models" in caught.value.message_dict["guaranteed_gpus"][0]
    quota.guaranteed_gpus = 8
    quota.full_clean()


def test_burst_and_reclaim_through_the_api(scenario, api_client, worker):
    """The two-team scenario over HTTP: quotas and jobs posted, placement runs asked for, usage read back."""
    onprem_node(scenario.site, name="dgx-2")
    operator = api_client(Role.OPERATOR)
    research, product = TeamFactory(name="research"), TeamFactory(name="product")
    for team, borrow in ((research, 8), (product, 4)):
        payload = quota_data(team, guaranteed_gpus=8, borrow_limit_gpus=borrow)
        assert operator.post(reverse("api:teamquota-list"), payload, format="json").status_code == 201

    def submit(team: Team, name: str) -> None:
        body = {"name": name, "team": team.pk, "gpu_count": 4, "gpu_model": "H100", "expected_hours": "1"}
        body["allowed_providers"] = ["onprem"]
        assert operator.post(reverse("api:job-list"), body, format="json").status_code == 201

    def place() -> dict:
        with worker():
            run = operator.post(reverse("api:job-place")).data
        return operator.get(run["url"]).data["report"]

    def usage() -> dict:
        rows = operator.get(reverse("api:teamquota-list")).data["results"]
        return {r["team_name"]: (r["used_gpus"], r["borrowed_gpus"], r["share"]) for r in rows}

    with worker():  # each submission's own run happens here; "place" below is a person asking again
        for i in range(4):
            submit(research, f"burst-{i}")
    assert usage() == {"product": (0, 0, "0.0000"), "research": (16, 8, "1.0000")}
    preemptible = operator.get(reverse("api:placement-list"), {"active": "true"}).data["results"]
    assert sorted(p["preemptible"] for p in preemptible) == [False, False, True, True]

    with worker():
        for i in range(2):
            submit(product, f"prod-{i}")
    assert usage() == {"product": (8, 0, "0.6667"), "research": (8, 0, "0.5000")}
    assert place()["reclaimed"] == []  # nothing is borrowed now
    waiting = Job.objects.filter(state="pending").order_by("pk")
    assert [j.name for j in waiting] == ["burst-2", "burst-3"]
    assert all(j.pending_reason.startswith("waiting for quota: no idle H100 GPUs are left to borrow;") for j in waiting)


def test_queue_page_shows_usage_and_escapes_hostile_team_names(scenario, client, make_user):
    hostile = TeamFactory(name='<script>alert("q")</script>')
    TeamQuota.objects.create(team=hostile, gpu_model="H100", guaranteed_gpus=4, borrow_limit_gpus=2)
    fields = {"team": hostile, "project": None, "datasets": [], "allowed_providers": ["onprem"]}
    scenario.job(name="in", gpu_count=6, expected_hours=Decimal("1"), **fields)
    jobs_place()
    scenario.job(name="over", gpu_count=1, expected_hours=Decimal("1"), **fields)
    jobs_place()
    assert Placement.objects.get(job__name="in").preemptible is True  # 6 > guarantee 4
    client.force_login(make_user(Role.VIEWER))

    html = client.get(reverse("scheduler")).content.decode()

    assert '<script>alert("q")</script>' not in html
    assert "&lt;script&gt;alert(&quot;q&quot;)&lt;/script&gt;" in html
    table = html[html.index('data-testid="quota-table"') :]
    table = table[: table.index("</table>")]
    cells = [c.split(">", 1)[1].split("<", 1)[0] for c in table.split("<td")[1:]]
    assert cells == [
        "&lt;script&gt;alert(&quot;q&quot;)&lt;/script&gt;",
        "H100",
        "6",
        "2",
        "4",
        "2",
        "1.000",
        "100.0 %",
        "6.00",  # usage ÷ weight
    ]
    assert (
        "waiting for quota: &lt;script&gt;alert(&quot;q&quot;)&lt;/script&gt; uses 6 of its 6 GPUs of H100 "
        "(guarantee 4 + borrow 2)" in html
    )
    assert "(borrowed: preemptible)" in html


def test_viewer_of_a_team_sees_only_its_teams_quotas(scenario, api_client):
    mine, theirs = TeamFactory(name="mine"), TeamFactory(name="theirs")
    for team in (mine, theirs):
        TeamQuota.objects.create(team=team, gpu_model="H100")
    viewer = api_client(Role.VIEWER)
    mine.members.add(viewer.user)
    rows = viewer.get(reverse("api:teamquota-list")).data["results"]
    assert [r["team_name"] for r in rows] == ["mine"]
