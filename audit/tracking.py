"""How a model is audited: pghistory trackers whose triggers also store an update's before/after diff.

Every tracked model gets one event table in this app (``audit_<model>event``): insert and delete events hold
the row as it was inserted or deleted, update events the new row plus ``pgh_diff``, ``{column: [before,
after]}`` of the columns that changed, computed by the trigger from ``OLD`` and ``NEW``. Storing the diff at
write time keeps it exact however old the previous event is (or if retention purged it, or the row predates
the audit trail), and lets the Changes page read one row per change instead of pairing events at read time.

*Quiet* fields are not recorded at all: telemetry and sync rewrite them on every poll (``last_seen``, the latest
GPU reading, sync timestamps, a token's ``last_used``), so an update that changes only those writes no event.
Secrets (a token's ``key_hash``, a user's password) are never recorded either.
"""

from __future__ import annotations

import pghistory
import pgtrigger
from django.db import models
from pghistory import trigger as pghistory_trigger
from pghistory.models import Event

DIFF_FIELD = "pgh_diff"


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def recorded_columns(model: type[models.Model], quiet: tuple[str, ...]) -> list[str]:
    """The database columns of ``model`` an event records: its concrete fields less the quiet ones."""
    return [f.column for f in model._meta.concrete_fields if f.name not in quiet]


class DiffEvent(pghistory_trigger.Event):
    """pghistory's event trigger, also storing ``{column: [old, new]}`` of the changed recorded columns."""

    def __init__(self, *, columns: list[str], **kwargs) -> None:
        self.columns = columns
        super().__init__(**kwargs)

    def get_func(self, model):
        """The trigger function: pghistory's INSERT of the event row, with the diff as one more column."""
        func = super().get_func(model)
        table = _quote(self.event_model._meta.db_table)
        keys = ", ".join(_sql_str(c) for c in self.columns)
        diff = (
            "(SELECT jsonb_object_agg(n.key, jsonb_build_array(o.value, n.value))"
            " FROM jsonb_each(to_jsonb(NEW)) AS n JOIN jsonb_each(to_jsonb(OLD)) AS o ON o.key = n.key"
            f" WHERE n.key IN ({keys}) AND n.value IS DISTINCT FROM o.value)"
        )
        head, values = f"INSERT INTO {table} (", ") VALUES ("
        # pghistory renders a row-level trigger as one INSERT ... VALUES: fail loudly if that ever changes.
        if func.func.count(head) != 1 or func.func.count(values) != 1:
            raise RuntimeError(f"pghistory's trigger SQL changed shape; cannot add the diff: {func.func}")
        sql = func.func.replace(head, f"{head}{_quote(DIFF_FIELD)}, ").replace(values, f"{values}{diff}, ")
        return pgtrigger.Func(sql)


class DiffUpdateEvent(pghistory.UpdateEvent):
    """An update event that fires when a recorded column changes and stores what changed."""

    def __init__(self, *, columns: list[str], condition: pgtrigger.Condition) -> None:
        self.columns = columns
        super().__init__(condition=condition)

    def add_event_trigger(self, event_model) -> None:
        """Register the diff-storing trigger on the tracked model (pghistory registers its plain one)."""
        pgtrigger.register(
            DiffEvent(
                columns=self.columns,
                event_model=event_model,
                label=self.label,
                name=self.trigger_name,
                row=self.row,
                operation=self.operation,
                condition=self.condition,
                level=self.level,
            )
        )(event_model.pgh_tracked_model)


def changed_condition(columns: list[str], *, extra_sql: str = "") -> pgtrigger.Condition:
    """A trigger condition: any of ``columns`` changed (NULL-safe), or the extra SQL holds."""
    old = ", ".join(f"OLD.{_quote(c)}" for c in columns)
    new = ", ".join(f"NEW.{_quote(c)}" for c in columns)
    sql = f"(ROW({old}) IS DISTINCT FROM ROW({new}))"
    if extra_sql:
        sql = f"({sql} OR ({extra_sql}))"
    return pgtrigger.Condition(sql)


class AuditEvent(Event):
    """The columns every audit event table has besides the tracked row: when (indexed) and the update's diff."""

    pgh_created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    pgh_diff = models.JSONField(null=True, help_text="Update events: {column: [before, after]} of what changed.")

    class Meta:
        abstract = True


def audited(
    model: type[models.Model],
    *,
    quiet: tuple[str, ...] = (),
    watched: tuple[str, ...] = (),
    watched_sql: str = "",
) -> type[models.Model]:
    """An abstract event model recording inserts, updates and deletes of ``model``, less its ``quiet`` fields.

    ``watched`` columns are recorded but left out of the change condition, which ``watched_sql`` (SQL over OLD
    and NEW) replaces for them: Node.state changes count unless telemetry made them (to or from unreachable).
    """
    columns = recorded_columns(model, quiet)
    watched_columns = {model._meta.get_field(name).column for name in watched}
    condition = changed_condition([c for c in columns if c not in watched_columns], extra_sql=watched_sql)
    return pghistory.create_event_model(
        model,
        pghistory.InsertEvent(),
        DiffUpdateEvent(columns=columns, condition=condition),
        pghistory.DeleteEvent(),
        exclude=list(quiet),
        app_label="audit",
        base_model=AuditEvent,
        context_field=pghistory.ContextJSONField(),
        context_id_field=pghistory.ContextUUIDField(),
        obj_field=pghistory.ObjForeignKey(related_name="+", related_query_name="+"),
    )
