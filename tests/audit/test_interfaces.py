"""A change through each interface (page, API with a token, admin, a Celery task) appears once in the audit
trail, with the right user, interface and before/after diff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from audit.models import APITokenEvent, GpuEvent, NodeEvent, TeamEvent
from core.choices import Role
from core.models import APIToken
from fleet.models import Team
from fleet.tasks import telemetry_poll_shard
from fleet.telemetry.report import poll_slot
from tests.audit.conftest import HOSTILE, all_changes, changes_of, diff_of
from tests.factories import GPUFactory, NodeFactory
from tests.fleet.telemetry.conftest import dcgm_text, exporter  # noqa: F401 - the fake dcgm-exporter fixture

UUID = "GPU-a0000000-0000-0000-0000-0000000000aa"


def poll(node, i: int):
    """Run the scrape shard task for ``node`` as Celery runs it (apply): ``i`` 0 in this poll slot, 1 in the
    next (a shard is stored once per slot; beat's time is used when it is within one interval of now)."""
    interval = timedelta(seconds=settings.TELEMETRY_POLL_INTERVAL_S)
    when = poll_slot(timezone.now()) + i * interval
    return telemetry_poll_shard.apply(
        kwargs={"index": 0, "count": 1, "node_ids": [node.pk], "scheduled_at": when.isoformat()}
    )


def test_a_page_form_change_is_the_logged_in_users(client, make_user):
    user = make_user(Role.OPERATOR, username="olga")
    client.force_login(user)
    response = client.post("/tokens/", {"name": HOSTILE, "read_only": "on", "expires_in": "90"})
    assert response.status_code == 200
    token = APIToken.objects.get(user=user)
    (change,) = changes_of(token)
    assert (change.event, change.user_id, change.username, change.interface) == ("insert", user.pk, "olga", "page")
    assert change.context["method"] == "POST" and change.context["path"] == "/tokens/"
    assert diff_of(change)["name"] == (None, HOSTILE)
    assert APITokenEvent.objects.count() == 1


def test_an_api_change_is_the_token_users(api_client):
    client = api_client(Role.OPERATOR)
    node = NodeFactory(name="gpu-api", instance_type="p5.48xlarge")
    events_before = NodeEvent.objects.count()
    response = client.patch(f"/api/v1/nodes/{node.pk}/", {"instance_type": "p4d.24xlarge"}, format="json")
    assert response.status_code == 200, response.content
    assert NodeEvent.objects.count() == events_before + 1
    change = changes_of(node)[0]
    assert (change.event, change.user_id, change.username) == ("update", client.user.pk, client.user.username)
    assert change.interface == "api"
    assert change.context["method"] == "PATCH" and change.context["path"] == f"/api/v1/nodes/{node.pk}/"
    assert diff_of(change) == {"instance_type": ("p5.48xlarge", "p4d.24xlarge")}
    # The token's first use wrote its last_used: not a change of the token anyone made.
    assert APIToken.objects.get(user=client.user).last_used is not None
    assert [c.event for c in changes_of(APIToken.objects.get(user=client.user))] == ["insert"]


def test_an_admin_change_is_the_admins(client, make_user):
    admin = make_user(Role.ADMIN, username="ada")
    client.force_login(admin)
    response = client.post("/admin/fleet/team/add/", {"name": "Research", "slug": "research"})
    assert response.status_code == 302, response.content[:2000]
    team = Team.objects.get(slug="research")
    (change,) = changes_of(team)
    assert (change.event, change.user_id, change.username, change.interface) == ("insert", admin.pk, "ada", "admin")
    assert diff_of(change)["name"] == (None, "Research")
    assert TeamEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_celery_task_change_is_the_tasks(exporter):  # noqa: F811
    node = NodeFactory(telemetry_url=exporter.url("n1"))
    # Found by cloud inventory: the GPU's UUID is unknown until its telemetry reports it.
    gpu = GPUFactory(node=node, index=0, uuid=None)
    exporter.bodies["n1"] = dcgm_text([{"uuid": UUID, "index": 0, "util": 87, "power": 612.5}])
    before = len(all_changes())
    result = poll(node, 0)
    assert result.successful(), result.traceback
    gpu.refresh_from_db()
    assert gpu.uuid == UUID
    changes = all_changes()
    assert len(changes) == before + 1  # the node's last_seen and the GPU's reading are not changes
    change = changes_of(gpu)[0]
    assert (change.event, change.user_id, change.interface) == ("update", None, "task")
    assert change.context["task"] == "fleet.tasks.telemetry_poll_shard"
    assert diff_of(change) == {"uuid": (None, UUID)}
    assert GpuEvent.objects.filter(pgh_label="update").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_steady_poll_writes_no_audit_rows(exporter):  # noqa: F811
    node = NodeFactory(telemetry_url=exporter.url("n1"))
    gpu = GPUFactory(node=node, index=0, uuid=UUID)
    before = len(all_changes())
    for i, util in enumerate((10, 90)):
        exporter.bodies["n1"] = dcgm_text([{"uuid": UUID, "index": 0, "util": util, "power": 300 + util}])
        assert poll(node, i).successful()
        gpu.refresh_from_db()
        assert gpu.util_pct == util  # this poll stored its reading
    node.refresh_from_db()
    assert node.last_seen is not None
    assert len(all_changes()) == before


@pytest.mark.django_db(transaction=True)
def test_a_node_going_unreachable_and_back_is_not_a_change(exporter, settings):  # noqa: F811
    settings.TELEMETRY_UNREACHABLE_AFTER_POLLS = 2
    node = NodeFactory(telemetry_url=exporter.url("gone"))  # 404: every poll fails
    before = len(all_changes())
    for i in range(settings.TELEMETRY_UNREACHABLE_AFTER_POLLS):
        poll(node, i)
    node.refresh_from_db()
    assert node.state == "unreachable"
    assert len(all_changes()) == before
    node.state = "stopped"  # an operator's (or sync's) change is recorded
    node.save()
    assert diff_of(changes_of(node)[0]) == {"state": ("unreachable", "stopped")}
