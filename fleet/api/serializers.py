"""Serializers of the fleet API (explicit field lists)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework import serializers

from core.api.serializers import ValidatedModelSerializer
from fleet.choices import NodeLifecycle
from fleet.models import GPU, GpuSlice, HealthEvent, InventoryScope, Node, Project, Provider, Site, SyncRun, Team
from fleet.slices import slice_extra_errors


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
            "carbon_g_per_kwh",
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
        extra_kwargs = {
            "lifecycle": {
                "required": False,
                "help_text": "How the node is paid for. Optional when registering: an on-prem node is owned, a "
                "cloud node on-demand unless told spot or reserved.",
            }
        }

    def validate(self, attrs):
        site = attrs.get("site")
        if self.instance is None and "lifecycle" not in attrs and site is not None:
            attrs["lifecycle"] = NodeLifecycle.OWNED if site.is_onprem else NodeLifecycle.ON_DEMAND
        return super().validate(attrs)  # Node.clean: an explicit lifecycle the site cannot have is a 400

    def get_gpu_count(self, node: Node) -> int:
        # Lists annotate the count (selectors.node_list); a freshly written node is counted on its own.
        count = getattr(node, "gpu_count", None)
        return node.gpus.count() if count is None else count


class GpuSliceBriefSerializer(serializers.ModelSerializer):
    """A slice as its GPU lists it (GPU and node API)."""

    class Meta:
        model = GpuSlice
        fields = ("id", "kind", "name", "units", "of_units", "team", "project")
        read_only_fields = fields


class GPUSerializer(ValidatedModelSerializer):
    slices = GpuSliceBriefSerializer(
        many=True, read_only=True, help_text="MIG instances or time-sliced replicas sharing this GPU; see gpu-slices."
    )

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
            "slices",
        )


class NodeDetailSerializer(NodeSerializer):
    """A node as GET /nodes/{id}/ shows it: with its GPUs and their slices."""

    gpus = GPUSerializer(many=True, read_only=True, help_text="The node's GPUs by index, each with its slices.")

    class Meta(NodeSerializer.Meta):
        fields = (*NodeSerializer.Meta.fields, "gpus")


class GpuSliceSerializer(ValidatedModelSerializer):
    """A share of a GPU a team uses. Checked as the admin checks it (GpuSlice.clean, fleet.slices), and again
    with the GPU locked when saved, so two writes at once cannot over-subscribe it."""

    node = serializers.IntegerField(source="gpu.node_id", read_only=True, help_text="The GPU's node.")

    class Meta:
        model = GpuSlice
        fields = ("id", "gpu", "node", "kind", "name", "units", "of_units", "team", "project", "created", "updated")
        extra_kwargs = {
            "gpu": {"help_text": "The GPU this is a slice of."},
            "team": {"help_text": "Who uses the slice and pays its share; empty: an idle slice (idle $)."},
            "project": {"help_text": "The team's project the share is attributed to."},
        }

    def validate(self, attrs):
        attrs = super().validate(attrs)
        self._check(self._would_be(attrs))
        return attrs

    def _would_be(self, attrs) -> GpuSlice:
        if self.instance is None:
            return GpuSlice(**attrs)
        candidate = GpuSlice(**{f.attname: getattr(self.instance, f.attname) for f in GpuSlice._meta.concrete_fields})
        for key, value in attrs.items():
            setattr(candidate, key, value)
        return candidate

    @staticmethod
    def _check(candidate: GpuSlice, *, clean: bool = False) -> None:
        errors = {}
        if clean:
            try:
                candidate.clean()
            except DjangoValidationError as exc:
                errors.update(exc.message_dict)
        errors.update(slice_extra_errors(candidate))
        if errors:
            raise serializers.ValidationError(errors)

    def _save_locked(self, candidate: GpuSlice, gpu_ids: set[int]) -> GpuSlice:
        with transaction.atomic():
            list(GPU.objects.select_for_update().filter(pk__in=sorted(gpu_ids)).values_list("pk", flat=True))
            self._check(candidate, clean=True)  # the GPU's other slices as they are now, under the lock
            candidate.save()
        return candidate

    def create(self, validated_data):
        candidate = GpuSlice(**validated_data)
        return self._save_locked(candidate, {candidate.gpu_id})

    def update(self, instance, validated_data):
        candidate = self._would_be(validated_data)
        return self._save_locked(candidate, {instance.gpu_id, candidate.gpu_id})


class HealthEventSerializer(serializers.ModelSerializer):
    gpu_index = serializers.IntegerField(source="gpu.index", read_only=True)
    node_name = serializers.CharField(source="node.name", read_only=True)
    open = serializers.SerializerMethodField(
        help_text="Not resolved yet: the GPU's hours count as broken capacity $ (XID, ECC double-bit, GPU lost)."
    )

    class Meta:
        model = HealthEvent
        fields = (
            "id",
            "gpu",
            "gpu_index",
            "node",
            "node_name",
            "kind",
            "code",
            "message",
            "occurred_at",
            "resolved_at",
            "open",
        )
        read_only_fields = fields

    def get_open(self, event: HealthEvent) -> bool:
        return event.resolved_at is None


class HealthEventResolveSerializer(serializers.Serializer):
    resolved_at = serializers.DateTimeField(
        required=False, help_text="When the GPU was fixed or replaced (ISO 8601); default now. Not before the event."
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
