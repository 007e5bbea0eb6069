"""Helpers of the audit trail tests: the events recorded for one object, and a job to change."""

from __future__ import annotations

import pytest

from audit.selectors import ChangeFilters, change_refs, changes_for
from fleet.models import Team
from scheduler.models import Job

HOSTILE = '<script>alert("x")</script>&amp;'


def changes_of(obj) -> list:
    """Every recorded change of ``obj``, newest first (the Changes page's selector)."""
    label = obj._meta.label_lower
    return changes_for(change_refs(ChangeFilters(object_type=label, object_id=obj.pk)))


def all_changes() -> list:
    """Every recorded change of every object, newest first."""
    return changes_for(change_refs(ChangeFilters()))


def diff_of(change) -> dict:
    """A change's diff as {field: (before, after)}."""
    return {name: (before, after) for name, before, after in change.diff}


@pytest.fixture
def job(db):
    team = Team.objects.create(name="Vision", slug="vision")
    return Job.objects.create(name="train-resnet", team=team, gpu_count=2, expected_hours=3)
