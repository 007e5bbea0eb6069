"""The shape of a change in the API."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class DiffEntrySerializer(serializers.Serializer):
    """One field of a change: its value before and after (null where the row did not exist)."""

    field = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class ChangeSerializer(serializers.Serializer):
    """One recorded change of an audited object."""

    id = serializers.SerializerMethodField(help_text="Unique across event tables: '<event model>:<event id>'.")
    at = serializers.DateTimeField()
    event = serializers.ChoiceField(choices=["insert", "update", "delete"])
    object_type = serializers.CharField(help_text="app_label.model of the changed object, e.g. fleet.node.")
    object_id = serializers.CharField()
    object_name = serializers.CharField()
    user = serializers.IntegerField(source="user_id", allow_null=True, help_text="Who made it (user id), if anyone.")
    username = serializers.CharField()
    interface = serializers.ChoiceField(choices=["page", "api", "admin", "task", "command"])
    context = serializers.JSONField(help_text="Everything recorded about the request or task (method, path, task).")
    diff = serializers.SerializerMethodField()

    def get_id(self, change) -> str:
        """The event's table and id: unique across the audit trail."""
        return f"{change.model}:{change.event_id}"

    @extend_schema_field(DiffEntrySerializer(many=True))
    def get_diff(self, change) -> list[dict]:
        """Insert: every recorded field's value (after); delete: before; update: what changed."""
        rows = [{"field": name, "before": before, "after": after} for name, before, after in change.diff]
        return DiffEntrySerializer(rows, many=True).data
