"""Writes of the core app: API tokens, roles, heartbeats."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.choices import HeartbeatComponent, Role
from core.models import APIToken, Heartbeat

TOKEN_PREFIX = "fdk_"  # noqa: S105 - a visible marker that makes leaked tokens easy to scan for
# Apps whose models every role can see; operators also write to the ones in OPERATOR_WRITE_APPS.
FLEETDECK_APPS = ("core", "fleet", "billing", "scheduler")
OPERATOR_WRITE_APPS = ("fleet", "billing", "scheduler")
HEARTBEAT_TASK = "core.tasks.heartbeat"


def api_token_hash(secret: str) -> str:
    """The stored form of a token: SHA-256 hex. Tokens carry 256 random bits, so no salt or stretching."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(
    *, user, name: str, read_only: bool = True, expires: datetime | None = None
) -> tuple[APIToken, str]:
    """Create a token for ``user``; return it with its secret, which is not stored and cannot be shown again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = APIToken.objects.create(
        user=user,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 4],
        key_hash=api_token_hash(secret),
        read_only=read_only,
        expires=expires,
    )
    return token, secret


def api_token_touch(*, token: APIToken, now: datetime | None = None) -> None:
    """Record that ``token`` was used, at most once per ``API_TOKEN_LAST_USED_RESOLUTION``."""
    now = now or timezone.now()
    if token.last_used is None or now - token.last_used >= settings.API_TOKEN_LAST_USED_RESOLUTION:
        APIToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now


def role_permissions(role: Role) -> list[Permission]:
    """The permissions a role grants (derived from the installed models, so new models are covered)."""
    view = Q(content_type__app_label__in=FLEETDECK_APPS + ("django_celery_beat",), codename__startswith="view_")
    # Tokens are managed per user on their own page, not through model permissions.
    view &= ~Q(content_type__app_label="core", content_type__model="apitoken")
    write = Q(content_type__app_label__in=OPERATOR_WRITE_APPS)
    # Admins also see and clear login lockouts (django-axes).
    everything = Q(content_type__app_label__in=FLEETDECK_APPS + ("django_celery_beat", "auth", "axes"))
    query = {Role.VIEWER: view, Role.OPERATOR: view | write, Role.ADMIN: everything}[role]
    return list(Permission.objects.filter(query).order_by("pk"))


@transaction.atomic
def roles_sync() -> None:
    """Create the viewer/operator/admin groups and set their permissions to what ``role_permissions`` says."""
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.set(role_permissions(role))


@transaction.atomic
def user_set_role(*, user, role: Role) -> None:
    """Give ``user`` exactly one role; admins also get access to the Django admin."""
    user.groups.remove(*Group.objects.filter(name__in=Role.values))
    user.groups.add(Group.objects.get(name=role.value))
    user.is_staff = role == Role.ADMIN
    user.save(update_fields=["is_staff"])


def heartbeat_record(*, component: HeartbeatComponent, name: str = "", hostname: str = "") -> Heartbeat:
    """Upsert the heartbeat row of one process (and queue) with the current time."""
    heartbeat, _ = Heartbeat.objects.update_or_create(
        component=component, name=name, defaults={"hostname": hostname, "last_seen": timezone.now()}
    )
    return heartbeat


def heartbeat_schedule_sync() -> None:
    """Make sure beat sends a heartbeat to every queue."""
    for queue in settings.FLEETDECK_QUEUES:
        periodic_task_ensure(
            name=f"heartbeat: {queue}",
            task=HEARTBEAT_TASK,
            every_s=settings.HEARTBEAT_INTERVAL_S,
            queue=queue,
            kwargs={"queue": queue},
            description=f"Proves that beat runs and that a worker consumes the {queue} queue.",
        )


def periodic_task_ensure(
    *,
    name: str,
    task: str,
    every_s: int,
    queue: str,
    kwargs: dict | None = None,
    description: str = "",
    first_run_at_start: bool = False,
) -> None:
    """Create a beat schedule entry if it is missing; an existing one (maybe edited in the admin) is kept.

    A new entry first runs one interval after beat starts, or at once with ``first_run_at_start`` (for work a
    fresh install should see soon: the ledger, due reports, budget alerts).
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=every_s, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.get_or_create(
        name=name,
        defaults={
            "task": task,
            "interval": every,
            "kwargs": json.dumps(kwargs or {}),
            "queue": queue,
            # A run that waited longer than its interval would be overtaken by the next one anyway.
            "expire_seconds": every_s,
            "description": description,
            # Beat treats a missing last run as "just ran"; a run an interval ago makes the entry due now.
            "last_run_at": timezone.now() - timedelta(seconds=every_s) if first_run_at_start else None,
        },
    )
