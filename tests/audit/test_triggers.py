"""The triggers are in the test database as migrate left them, and record what the ORM and raw SQL change."""

from __future__ import annotations

from django.db import connection

from audit.models import APITokenEvent, NodeEvent, UserEvent
from core.models import APIToken
from core.services import api_token_create
from fleet.models import Node
from tests.audit.conftest import all_changes, changes_of, diff_of
from tests.factories import NodeFactory


def test_insert_update_delete_are_recorded_with_a_diff(db):
    node = NodeFactory(name="gpu-a", instance_type="p5.48xlarge")
    node.instance_type = "p4d.24xlarge"
    node.save()
    pk = node.pk
    node.delete()
    changes = changes_of(Node(pk=pk))
    assert [c.event for c in changes] == ["delete", "update", "insert"]
    assert diff_of(changes[1]) == {"instance_type": ("p5.48xlarge", "p4d.24xlarge")}
    assert diff_of(changes[2])["name"] == (None, "gpu-a")
    assert diff_of(changes[0])["instance_type"] == ("p4d.24xlarge", None)
    # Outside a request or task, nobody and "command".
    assert {(c.user_id, c.username, c.interface) for c in changes} == {(None, "", "command")}


def test_a_bulk_queryset_update_is_recorded_once_per_row(db):
    nodes = NodeFactory.create_batch(3, instance_type="p5.48xlarge")
    NodeEvent.objects.all().delete()
    Node.objects.filter(pk__in=[n.pk for n in nodes[:2]]).update(instance_type="g6.xlarge")
    events = NodeEvent.objects.order_by("pgh_obj_id")
    assert [(e.pgh_obj_id, e.pgh_label) for e in events] == [(nodes[0].pk, "update"), (nodes[1].pk, "update")]
    assert events[0].pgh_diff == {"instance_type": ["p5.48xlarge", "g6.xlarge"]}


def test_raw_sql_is_recorded_too(db):
    node = NodeFactory(name="gpu-raw")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE fleet_node SET name = %s WHERE id = %s", ["gpu-renamed", node.pk])
    (update,) = [c for c in changes_of(node) if c.event == "update"]
    assert diff_of(update) == {"name": ("gpu-raw", "gpu-renamed")}


def test_an_update_that_changes_nothing_recorded_writes_no_event(db):
    node = NodeFactory()
    before = NodeEvent.objects.count()
    node.save()  # same values (only `updated` moves, which is not recorded)
    Node.objects.filter(pk=node.pk).update(last_seen="2026-12-01T00:00:00Z", consecutive_poll_failures=2)
    assert NodeEvent.objects.count() == before


def test_token_secrets_and_passwords_are_never_recorded(make_user):
    user = make_user("operator")
    token, _ = api_token_create(user=user, name="ci")
    event = APITokenEvent.objects.get(pgh_obj_id=token.pk)
    assert not hasattr(event, "key_hash")
    user.set_password("another-long-password")
    user.save()
    assert not any(hasattr(e, "password") for e in UserEvent.objects.all())
    assert all("password" not in dict((n, 0) for n, *_ in c.diff) for c in all_changes())
    # Rotating the hash (as a leak would) records no event, and no diff anywhere names it.
    APIToken.objects.filter(pk=token.pk).update(key_hash="0" * 64)
    assert APITokenEvent.objects.filter(pgh_obj_id=token.pk).count() == 1
    assert all("key_hash" not in dict((n, 0) for n, *_ in c.diff) for c in all_changes())
