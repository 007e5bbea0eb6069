"""The Changes page: who may see it, what a row shows (escaped), its filters and pages, and the History panel
that node and job detail pages load."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import TeamEvent
from audit.views import CHANGES_PER_PAGE
from core.choices import Role
from fleet.models import Team
from tests.audit.conftest import HOSTILE
from tests.factories import NodeFactory


@pytest.fixture
def operator_client(client, make_user):
    client.force_login(make_user(Role.OPERATOR, username="olga"))
    return client


def test_operators_and_admins_see_it_viewers_do_not(client, make_user):
    assert client.get("/changes/").status_code == 302  # to the login page
    client.force_login(make_user(Role.VIEWER))
    assert client.get("/changes/").status_code == 403
    assert b'href="/changes/"' not in client.get("/tokens/").content  # no nav link either
    for role in (Role.OPERATOR, Role.ADMIN):
        client.force_login(make_user(role))
        response = client.get("/changes/")
        assert response.status_code == 200
        assert b'href="/changes/"' in response.content


def test_a_row_shows_who_what_and_the_diff_escaped(operator_client, make_user):
    team = Team.objects.create(name=HOSTILE, slug="hostile")
    team.name = "Research & <b>Dev</b>"
    team.save()
    body = operator_client.get("/changes/").content.decode()
    assert "<script>" not in body and "<b>Dev</b>" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in body
    assert "Research &amp; &lt;b&gt;Dev&lt;/b&gt;" in body
    assert f"fleet.team #{team.pk}" in body
    assert body.count('data-event="audit.teamevent:') == 2


def test_filters_narrow_the_list(operator_client, make_user):
    ada = make_user(Role.ADMIN, username="ada")
    node = NodeFactory(name="gpu-f1")
    other = NodeFactory(name="gpu-f2")
    node.instance_type = "g6.xlarge"
    node.save()

    def count(**params) -> int:
        response = operator_client.get("/changes/", params)
        assert response.status_code == 200
        return response.content.decode().count('data-event="audit.nodeevent:')

    assert count(object_type="fleet.node") == 3  # two inserts, gpu-f1's update
    assert count(object_type="fleet.node", object_id=node.pk) == 2
    assert count(object_type="fleet.node", object_id=other.pk) == 1
    assert count(object_type="fleet.node", event="update") == 1
    assert count(object_type="fleet.node", interface="command") == 3
    assert count(object_type="fleet.node", interface="page") == 0
    assert count(object_type="fleet.node", user=ada.pk) == 0
    today = timezone.now().date()
    assert count(object_type="fleet.node", since=today, until=today) == 3
    assert count(object_type="fleet.node", until=today - timedelta(days=1)) == 0


def test_a_filter_not_understood_is_named_and_ignored(operator_client):
    NodeFactory(name="gpu-bad")
    response = operator_client.get("/changes/", {"object_type": "fleet.nothing", "object_id": "x", "since": "soon"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Some filters were not understood" in body
    for name in ("object_type", "object_id", "since"):
        assert f"<strong>{name}</strong>" in body
    assert 'data-event="audit.nodeevent:' in body  # the list is still there, unfiltered


def test_the_last_day_before_the_first_is_an_error(operator_client):
    body = operator_client.get("/changes/", {"since": "2026-12-02", "until": "2026-12-01"}).content.decode()
    assert "The last day comes before the first." in body


def test_pages_of_changes_and_the_htmx_table(operator_client):
    Team.objects.bulk_create([Team(name=f"t{i}", slug=f"t{i}") for i in range(CHANGES_PER_PAGE + 1)])
    assert TeamEvent.objects.count() == CHANGES_PER_PAGE + 1  # a bulk insert is recorded row by row
    first = operator_client.get("/changes/", {"object_type": "fleet.team"}).content.decode()
    assert first.count('data-event="audit.teamevent:') == CHANGES_PER_PAGE
    assert "Page 1 of 2" in first
    second = operator_client.get(
        "/changes/", {"object_type": "fleet.team", "page": 2}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert second.count('data-event="audit.teamevent:') == 1
    assert second.lstrip().startswith('<section id="change-table"')  # the table only


def test_node_and_job_pages_load_their_history(operator_client, job):
    node = NodeFactory(name="gpu-h1")
    node.instance_type = "g6.xlarge"
    node.save()
    NodeFactory(name="gpu-h2")
    page = operator_client.get(f"/nodes/{node.pk}/").content.decode()
    assert f'hx-get="/changes/fleet.node/{node.pk}/"' in page
    panel = operator_client.get(f"/changes/fleet.node/{node.pk}/").content.decode()
    assert panel.count('data-event="audit.nodeevent:') == 2
    assert "p5.48xlarge → g6.xlarge" in panel
    job_page = operator_client.get(f"/scheduler/jobs/{job.pk}/").content.decode()
    assert f'hx-get="/changes/scheduler.job/{job.pk}/"' in job_page
    job_panel = operator_client.get(f"/changes/scheduler.job/{job.pk}/").content.decode()
    assert job_panel.count('data-event="audit.jobevent:') == 1
    assert operator_client.get(f"/changes/fleet.nothing/{node.pk}/").status_code == 404


def test_a_viewer_gets_no_history(client, make_user):
    node = NodeFactory()
    client.force_login(make_user(Role.VIEWER))
    panel = client.get(f"/changes/fleet.node/{node.pk}/").content.decode()
    assert "shown to operators and admins" in panel
    assert "data-event" not in panel


def test_an_object_without_a_name_is_named_by_what_it_points_at_in_one_query_per_model(
    operator_client, django_assert_max_num_queries
):
    from scheduler.models import TeamQuota
    from tests.factories import GPUFactory

    hostile = Team.objects.create(name=HOSTILE, slug="hostile-q")
    TeamQuota.objects.create(team=hostile, gpu_model="")  # all GPU models: a row with no name of its own
    for i in range(5):
        GPUFactory(node=NodeFactory(name=f"gpu-n{i}"), index=0)  # GPUs are named by their node
    body = operator_client.get("/changes/", {"object_type": "scheduler.teamquota"}).content.decode()
    assert "team=&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in body and "<script>" not in body
    body = operator_client.get("/changes/", {"object_type": "fleet.gpu"}).content.decode()
    assert all(f"node=gpu-n{i}" in body for i in range(5))
    with django_assert_max_num_queries(10):  # 10 with one GPU or six: the node names come in one query
        operator_client.get("/changes/", {"object_type": "fleet.gpu"})
