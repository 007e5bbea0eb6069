"""Runs someone asked for (core.runs): claimed by exactly one worker, re-claimed only once stale; stalled runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.choices import RunStatus
from core.runs import run_claim, run_stalled
from scheduler.models import PlaceRun

pytestmark = pytest.mark.django_db
STALE = timedelta(minutes=3)


def test_a_run_is_claimed_once():
    run = PlaceRun.objects.create()
    assert run_claim(PlaceRun.objects, run.pk, stale_after=STALE)
    assert not run_claim(PlaceRun.objects, run.pk, stale_after=STALE)  # a second delivery: already running
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.started_at is not None


def test_a_run_left_running_past_its_time_limit_is_claimed_again_and_a_finished_one_never():
    now = timezone.now()
    stale = PlaceRun.objects.create(status=RunStatus.RUNNING, started_at=now - STALE - timedelta(seconds=1))
    recent = PlaceRun.objects.create(status=RunStatus.RUNNING, started_at=now - STALE + timedelta(seconds=5))
    done = PlaceRun.objects.create(status=RunStatus.DONE, started_at=now - timedelta(days=1))
    assert run_claim(PlaceRun.objects, stale.pk, stale_after=STALE, now=now)
    assert not run_claim(PlaceRun.objects, recent.pk, stale_after=STALE, now=now)
    assert not run_claim(PlaceRun.objects, done.pk, stale_after=STALE, now=now)
    assert not run_claim(PlaceRun.objects, 987654321, stale_after=STALE, now=now)


def test_stalled_means_unfinished_and_asked_for_long_ago():
    run = PlaceRun.objects.create()
    now = timezone.now()
    assert not run_stalled(run, within=STALE, now=now)
    assert run_stalled(run, within=STALE, now=now + STALE + timedelta(seconds=1))
    run.status = RunStatus.DONE
    assert not run_stalled(run, within=STALE, now=now + timedelta(days=1))
