"""Serializers of the fleet API (explicit field lists)."""

from rest_framework import serializers

from core.api.serializers import ValidatedModelSerializer
from fleet.models import GPU, InventoryScope, Node, Project, Provider, Site, SyncRun, Team


class ProviderSerializer(ValidatedModelSerializer):
    class Meta:
        model = Provider
        fields = (
            "id",
            "name",
            "kind",
            "account_id",
            "credential_ref",
            "regions",
            "agent_url_template",
            "agent_token_ref",
            "enabled",
            "created",
            "updated",
        )


class SiteSerializer(ValidatedModelSerializer):
    class Meta:
        model = Site
        fields = (
            "id",
            "provider",
            "name",
            "region",
            "zone",
            "continent",
            "electricity_usd_per_kwh",
            "pue",
            "created",
            "updated",
        )


class TeamSerializer(ValidatedModelSerializer):
    class Meta:
        model = Team
        fields = ("id", "name", "slug")


class ProjectSerializer(ValidatedModelSerializer):
    class Meta:
        model = Project
        fields = ("id", "team", "name", "slug")


class NodeSerializer(ValidatedModelSerializer):
    provider_kind = serializers.CharField(source="site.provider.kind", read_only=True)
    gpu_count = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = (
            "id",
            "site",
            "provider_kind",
            "name",
            "external_id",
            "instance_type",
            "lifecycle",
            "state",
            "team",
            "project",
            "labels",
            "telemetry_url",
            "token_ref",
            "source",
            "launched_at",
            "last_seen",
            "consecutive_poll_failures",
            "last_poll_error",
            "gpu_count",
            "created",
            "updated",
        )
        read_only_fields = ("source", "last_seen", "consecutive_poll_failures", "last_poll_error")

    def get_gpu_count(self, node: Node) -> int:
        # Lists annotate the count (selectors.node_list); a freshly written node is counted on its own.
        count = getattr(node, "gpu_count", None)
        return node.gpus.count() if count is None else count


class GPUSerializer(ValidatedModelSerializer):
    class Meta:
        model = GPU
        extra_kwargs = {"uuid": {"allow_blank": False}}  # unknown is null, never ""
        fields = (
            "id",
            "node",
            "index",
            "uuid",
            "model",
            "memory_mib",
            "power_limit_w",
            "sampled_at",
            "util_pct",
            "mem_used_mib",
            "power_w",
            "temp_c",
            "sm_clock_mhz",
            "idle_since",
        )


class InventoryScopeSerializer(serializers.ModelSerializer):
    provider_name = serializers.CharField(source="provider.name", read_only=True)
    ok = serializers.BooleanField(read_only=True)

    class Meta:
        model = InventoryScope
        fields = (
            "id",
            "provider",
            "provider_name",
            "scope",
            "ok",
            "last_attempt_at",
            "last_success_at",
            "consecutive_failures",
            "next_attempt_at",
            "last_error",
            "nodes_seen",
        )
        read_only_fields = fields


class ScopeReportSerializer(serializers.Serializer):
    scope = serializers.CharField()
    ok = serializers.BooleanField()
    skipped = serializers.BooleanField(help_text="Still backing off after failures; not attempted.")
    nodes_seen = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    retired = serializers.IntegerField(help_text="Nodes no longer listed by the cloud, now terminated.")
    error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())


class SyncReportSerializer(serializers.Serializer):
    provider = serializers.CharField()
    ok = serializers.BooleanField()
    scopes = ScopeReportSerializer(many=True)


class SyncRunSerializer(serializers.ModelSerializer):
    """A sync run as the client polls it: its status, then the report per scope or why it failed."""

    url = serializers.HyperlinkedIdentityField(view_name="api:syncrun-detail", help_text="Poll this until finished.")
    provider_name = serializers.CharField(source="provider.name", read_only=True)
    finished = serializers.BooleanField(read_only=True, help_text="Done or failed: polling can stop.")
    report = SyncReportSerializer(read_only=True, allow_null=True, help_text="What each scope did, once done.")

    class Meta:
        model = SyncRun
        fields = (
            "id",
            "url",
            "provider",
            "provider_name",
            "status",
            "finished",
            "force",
            "requested_at",
            "started_at",
            "finished_at",
            "report",
            "error",
        )
        read_only_fields = fields
