"""Retention: events older than AUDIT_RETENTION_DAYS are purged daily (0 keeps everything)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from pghistory.models import Context

from audit.models import NodeEvent, TeamEvent
from audit.schedules import AUDIT_PURGE_INTERVAL_S, audit_schedules_sync
from audit.services import audit_purge
from audit.tasks import audit_purge as audit_purge_task
from fleet.models import Team
from tests.factories import NodeFactory


def _age(model, pks, days: int) -> None:
    model.objects.filter(pgh_obj_id__in=pks).update(pgh_created_at=timezone.now() - timedelta(days=days))


def test_the_daily_task_purges_what_is_older_than_the_retention(db, settings):
    settings.AUDIT_RETENTION_DAYS = 30
    old, recent = NodeFactory(name="gpu-old"), NodeFactory(name="gpu-new")
    team = Team.objects.create(name="Old team", slug="old-team")
    _age(NodeEvent, [old.pk], 31)
    _age(NodeEvent, [recent.pk], 29)
    _age(TeamEvent, [team.pk], 400)
    Context.objects.create(metadata={"user": None})
    Context.objects.filter().update(updated_at=timezone.now() - timedelta(days=31))
    result = audit_purge_task.apply()
    assert result.successful()
    assert result.result == {"audit.NodeEvent": 1, "audit.TeamEvent": 1, "contexts": 1}
    assert list(NodeEvent.objects.values_list("pgh_obj_id", flat=True)) == [recent.pk]
    assert not TeamEvent.objects.exists()


def test_zero_days_keeps_everything(db, settings):
    settings.AUDIT_RETENTION_DAYS = 0
    node = NodeFactory()
    _age(NodeEvent, [node.pk], 10_000)
    assert audit_purge() == {}
    assert NodeEvent.objects.filter(pgh_obj_id=node.pk).exists()


def test_an_explicit_retention_overrides_the_setting(db):
    node = NodeFactory()
    _age(NodeEvent, [node.pk], 8)
    assert audit_purge(retention_days=7) == {"audit.NodeEvent": 1}


def test_beat_runs_the_purge_daily(db):
    PeriodicTask.objects.filter(task="audit.tasks.audit_purge").delete()
    audit_schedules_sync()
    entry = PeriodicTask.objects.get(name="audit: purge old changes")
    assert (entry.task, entry.queue, entry.interval.every) == ("audit.tasks.audit_purge", "reports", 86_400)
    assert AUDIT_PURGE_INTERVAL_S == 86_400


def test_a_negative_retention_is_refused_at_start():
    from tests.test_settings import PRODUCTION_ENV, run_manage

    for value, message in (
        ("-1", "AUDIT_RETENTION_DAYS=-1: use 0"),
        ("a year", "AUDIT_RETENTION_DAYS='a year' is not"),
    ):
        result = run_manage("check", env={**PRODUCTION_ENV, "AUDIT_RETENTION_DAYS": value})
        assert result.returncode != 0
        assert message in result.stderr
