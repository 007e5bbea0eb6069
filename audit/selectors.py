"""Reads of the audit trail: the event models, the filtered list of changes across them, one object's history.

A change is one event row. The list is a UNION ALL of the event tables' (model, id, time) narrowed by the
filters, ordered newest first; only the rows of the page asked for are then read in full, one query per event
table on that page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q, Value
from django.urls import reverse

from audit.context import INTERFACE_COMMAND
from audit.tracking import AuditEvent
from fleet.scoping import SPEND_ALL_TEAMS_PERM

EVENT_INSERT, EVENT_UPDATE, EVENT_DELETE = "insert", "update", "delete"
# Tracked models whose rows have a detail page: its URL name (pages of other apps, by name only).
DETAIL_URL_NAMES = {"fleet.node": "node-detail", "scheduler.job": "scheduler-job"}


def audit_visible(user) -> bool:
    """Whether ``user`` may read the audit trail: operators and admins (who see every team), superusers."""
    return bool(user.is_authenticated and (user.is_superuser or user.has_perm(SPEND_ALL_TEAMS_PERM)))


@cache
def audit_event_models() -> tuple[type[AuditEvent], ...]:
    """Every event model of the audit trail, in a fixed order."""
    found = [m for m in apps.get_app_config("audit").get_models() if issubclass(m, AuditEvent)]
    return tuple(sorted(found, key=lambda m: m._meta.label_lower))


def object_type(event_model: type[AuditEvent]) -> str:
    """The tracked model's ``app_label.model`` (lower case), e.g. ``fleet.node`` or ``fleet.team_members``."""
    return event_model.pgh_tracked_model._meta.label_lower


@cache
def object_types() -> dict[str, type[AuditEvent]]:
    """Tracked model label (``fleet.node``) → its event model."""
    return {object_type(m): m for m in audit_event_models()}


def object_type_choices() -> list[tuple[str, str]]:
    """(label, human name) of each tracked model, for a filter's select."""
    choices = []
    for label, model in object_types().items():
        tracked = model.pgh_tracked_model._meta
        name = tracked.verbose_name if not tracked.auto_created else label.split(".", 1)[1].replace("_", " ")
        choices.append((label, f"{name[:1].upper()}{name[1:]} ({label})"))
    return sorted(choices, key=lambda c: c[1].lower())


@dataclass(frozen=True)
class ChangeFilters:
    """What the Changes page and API narrow the list by; empty fields do not narrow."""

    object_type: str = ""
    object_id: int | None = None
    user: int | None = None
    interface: str = ""
    event: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class Change:
    """One recorded change: when, who, through what, which object, what happened, and the diff."""

    model: str
    event_id: int
    at: datetime
    event: str
    object_type: str
    object_id: str
    object_name: str
    object_url: str
    user_id: int | None
    username: str
    interface: str
    context: dict[str, Any]
    diff: list[tuple[str, Any, Any]] = field(default_factory=list)


def _event_filter(f: ChangeFilters) -> Q:
    q = Q()
    if f.object_id is not None:
        q &= Q(pgh_obj_id=f.object_id)
    if f.user is not None:
        q &= Q(pgh_context__user=f.user)
    if f.interface == INTERFACE_COMMAND:
        q &= Q(pgh_context__isnull=True) | Q(pgh_context__interface__isnull=True)
    elif f.interface:
        q &= Q(pgh_context__interface=f.interface)
    if f.event:
        q &= Q(pgh_label=f.event)
    if f.since is not None:
        q &= Q(pgh_created_at__gte=f.since)
    if f.until is not None:
        q &= Q(pgh_created_at__lt=f.until)
    return q


def change_refs(filters: ChangeFilters) -> models.QuerySet:
    """The (model, event id, time) of every change matching ``filters``, newest first: a values() queryset
    for a Paginator. An unknown object type matches nothing."""
    if filters.object_type:
        model = object_types().get(filters.object_type)
        event_models = [model] if model is not None else []
    else:
        event_models = list(audit_event_models())
    if not event_models:
        return audit_event_models()[0].objects.none().values("pgh_id")
    q = _event_filter(filters)
    parts = [
        m.objects.filter(q)
        .annotate(event_model=Value(m._meta.label_lower, output_field=models.CharField()))
        .values("event_model", "pgh_id", "pgh_created_at")
        .order_by()
        for m in event_models
    ]
    union = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return union.order_by("-pgh_created_at", "-pgh_id", "event_model")


def _field_names(tracked: type[models.Model]) -> dict[str, str]:
    return {f.column: f.name for f in tracked._meta.concrete_fields}


NAME_FIELDS = ("name", "username", "slug")


def _own_name(row) -> str:
    """A row's (or event snapshot's) name, user name or slug; "" when it has none."""
    for name in NAME_FIELDS:
        value = getattr(row, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


def _related_names(events: list[AuditEvent]) -> dict[tuple[type[models.Model], Any], str]:
    """(model, pk) → name of every named row the events' foreign keys point at: one query per related model."""
    wanted: dict[type[models.Model], set] = {}
    for event in events:
        for f in event.pgh_tracked_model._meta.concrete_fields:
            value = getattr(event, f.attname, None)
            if f.is_relation and value is not None:
                wanted.setdefault(f.related_model, set()).add(value)
    names = {}
    for model, ids in wanted.items():
        fields = [n for n in NAME_FIELDS if n in {f.name for f in model._meta.concrete_fields}]
        if fields:
            for row in model._base_manager.filter(pk__in=ids).only(*fields):
                names[(model, row.pk)] = _own_name(row)
    return names


def _object_name(event: AuditEvent, tracked: type[models.Model], related: dict) -> str:
    """The object's name, else its foreign keys by name (``team=Research``), else ``#pk``."""
    if own := _own_name(event):
        return own
    parts = []
    for f in tracked._meta.concrete_fields:
        if f.is_relation:
            value = getattr(event, f.attname)
            parts.append(f"{f.name}={related.get((f.related_model, value)) or value}")
    return ", ".join(parts) or f"#{event.pgh_obj_id}"


def _diff(event: AuditEvent, tracked: type[models.Model]) -> list[tuple[str, Any, Any]]:
    """(field, before, after) per recorded field: changed ones for an update, every one for insert/delete."""
    names = _field_names(tracked)
    if event.pgh_label == EVENT_UPDATE:
        return [(names.get(col, col), pair[0], pair[1]) for col, pair in sorted((event.pgh_diff or {}).items())]
    rows = []
    for f in type(event)._meta.concrete_fields:
        if f.name.startswith("pgh_") or f.column not in names:
            continue
        # The values as JSON has them, like an update's diff (which the trigger builds with to_jsonb).
        value = json.loads(json.dumps(getattr(event, f.attname), cls=DjangoJSONEncoder))
        rows.append(
            (names[f.column], None, value) if event.pgh_label == EVENT_INSERT else (names[f.column], value, None)
        )
    return rows


def _change(event: AuditEvent, related: dict) -> Change:
    tracked = event.pgh_tracked_model
    label = tracked._meta.label_lower
    context = event.pgh_context or {}
    pk = str(event.pgh_obj_id)
    url_name = DETAIL_URL_NAMES.get(label)
    return Change(
        model=type(event)._meta.label_lower,
        event_id=event.pgh_id,
        at=event.pgh_created_at,
        event=event.pgh_label,
        object_type=label,
        object_id=pk,
        object_name=_object_name(event, tracked, related),
        object_url=reverse(url_name, args=[pk]) if url_name and event.pgh_label != EVENT_DELETE else "",
        user_id=context.get("user"),
        username=context.get("username") or "",
        interface=context.get("interface") or INTERFACE_COMMAND,
        context=context,
        diff=_diff(event, tracked),
    )


def changes_for(refs) -> list[Change]:
    """The full changes of a page of ``change_refs`` rows, in the same order (one query per event table)."""
    refs = list(refs)
    by_model: dict[str, list[int]] = {}
    for ref in refs:
        by_model.setdefault(ref["event_model"], []).append(ref["pgh_id"])
    events = {}
    for label, ids in by_model.items():
        model = apps.get_model(label)
        for event in model.objects.filter(pgh_id__in=ids):
            events[(label, event.pgh_id)] = event
    related = _related_names(list(events.values()))
    return [
        _change(events[(r["event_model"], r["pgh_id"])], related)
        for r in refs
        if (r["event_model"], r["pgh_id"]) in events
    ]


def object_history(*, object_type: str, object_id: int, limit: int = 50) -> list[Change]:
    """The newest ``limit`` changes of one object (an unknown type has none)."""
    refs = change_refs(ChangeFilters(object_type=object_type, object_id=object_id))
    return changes_for(refs[:limit])
