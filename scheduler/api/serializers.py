"""Serializers of the scheduler API (explicit field lists)."""

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.fields import StrictPrimaryKeyRelatedField
from core.api.serializers import ValidatedModelSerializer
from fleet.catalog import GPU_SPECS
from fleet.choices import ProviderKind
from scheduler import selectors
from scheduler.datasets import dataset_location, dataset_place_resolve
from scheduler.jobs import TRANSITIONS
from scheduler.models import Dataset, Job, Placement, PlaceRun

PRIORITY_RANGE = (-1000, 1000)
MAX_GPUS_PER_JOB = 1024
MAX_EXPECTED_HOURS = 24 * 366


def gpu_model_validate(value: str) -> str:
    """A catalogue key (H100, A100-80GB, …) or empty; anything else is refused with the known keys."""
    if value and value not in GPU_SPECS:
        raise serializers.ValidationError(f"Unknown GPU model {value!r}; use one of {', '.join(GPU_SPECS)}.")
    return value


def job_request_errors(*, team, project, gpu_model: str, min_gpu_memory_mib, allowed_regions) -> dict[str, str]:
    """The rules a job request obeys beyond its single fields, by field (JobSerializer and JobForm both check)."""
    errors = {}
    if project is not None and team is not None and project.team_id != team.pk:
        errors["project"] = f"Project {project} belongs to another team than {team}."
    if gpu_model and min_gpu_memory_mib:
        errors["min_gpu_memory_mib"] = "Give a GPU model or a minimum GPU memory, not both."
    regions = list(allowed_regions or ())
    if len(set(regions)) != len(regions):
        errors["allowed_regions"] = "A region is listed twice."
    return errors


# The provider-kind enum is spelled inline: a named component per field name would collide with fleet's KindEnum.
PROVIDER_KINDS_SCHEMA = {"type": "array", "items": {"type": "string", "enum": list(ProviderKind.values)}}


@extend_schema_field(PROVIDER_KINDS_SCHEMA)
class ProviderKindListField(serializers.ListField):
    """A list of provider kinds (aws, gcp, onprem), each checked."""

    child = serializers.CharField()

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        unknown = sorted(set(values) - set(ProviderKind.values))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown provider kind(s) {', '.join(unknown)}; use {', '.join(ProviderKind.values)}."
            )
        if len(set(values)) != len(values):
            raise serializers.ValidationError("A provider kind is listed twice.")
        return values


class DatasetSerializer(ValidatedModelSerializer):
    location = serializers.SerializerMethodField()
    provider_kind = serializers.CharField(read_only=True, help_text="aws, gcp or onprem (from the URI or site).")

    class Meta:
        model = Dataset
        fields = ("id", "name", "uri", "provider_kind", "region", "site", "size_bytes", "location", "created")

    def get_location(self, obj) -> str:
        """The location key (``aws:us-east-1``, ``onprem:dc-1``) placement compares."""
        return dataset_location(obj).key

    def validate(self, attrs):
        current = self.instance
        uri = attrs.get("uri", current.uri if current else "")
        # The stored region belongs to the stored uri/site: once either changes it is looked up again (s3) or
        # must be given (gs); only a request that moves neither keeps it.
        keep_region = current is not None and "uri" not in attrs and "site" not in attrs
        region = attrs.get("region", current.region if keep_region else "")
        site = attrs.get("site", current.site if current else None)
        try:
            place = dataset_place_resolve(uri=uri, region=region, site=site)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        attrs.update(provider_kind=place.provider_kind, region=place.region, site=place.site)
        return super().validate(attrs)


class JobSerializer(ValidatedModelSerializer):
    gpu_model = serializers.CharField(
        max_length=32,
        required=False,
        allow_blank=True,
        validators=[gpu_model_validate],
        help_text="Catalogue key (H100, A100-80GB…); empty: any.",
    )
    datasets = StrictPrimaryKeyRelatedField(many=True, queryset=Dataset.objects.all(), required=False)
    allowed_providers = ProviderKindListField(required=False, help_text="Empty: any provider.")
    active_placement = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = (
            "id",
            "name",
            "team",
            "project",
            "gpu_count",
            "gpu_model",
            "min_gpu_memory_mib",
            "expected_hours",
            "datasets",
            "priority",
            "max_usd_per_h",
            "spot_allowed",
            "allowed_providers",
            "allowed_regions",
            "state",
            "pending_reason",
            "active_placement",
            "created",
            "started_at",
            "ended_at",
        )
        read_only_fields = ("state", "pending_reason", "started_at", "ended_at")
        extra_kwargs = {
            "gpu_count": {"min_value": 1, "max_value": MAX_GPUS_PER_JOB},
            "min_gpu_memory_mib": {"min_value": 1},
            "expected_hours": {"min_value": Decimal("0.01"), "max_value": MAX_EXPECTED_HOURS},
            "priority": {"min_value": PRIORITY_RANGE[0], "max_value": PRIORITY_RANGE[1]},
            "max_usd_per_h": {"min_value": 0},
        }

    def get_active_placement(self, obj) -> int | None:
        """The id of the job's current placement, if any."""
        active = [p.pk for p in obj.placements.all() if p.active]
        return active[0] if active else None

    def validate(self, attrs):
        current = self.instance
        errors = job_request_errors(
            team=attrs.get("team", current.team if current else None),
            project=attrs.get("project", current.project if current else None),
            gpu_model=attrs.get("gpu_model", current.gpu_model if current else ""),
            min_gpu_memory_mib=attrs.get("min_gpu_memory_mib", current.min_gpu_memory_mib if current else None),
            allowed_regions=attrs.get("allowed_regions"),
        )
        if current is not None and "team" in attrs and attrs["team"] != current.team:
            errors["team"] = "A job's team cannot change; submit a new job."
        scope = self.context.get("scope")  # the caller's teams (fleet.scoping); None: every team
        if scope is not None and attrs.get("team") is not None and attrs["team"].pk not in scope:
            errors["team"] = "Choose one of your own teams."
        if errors:
            raise serializers.ValidationError(errors)
        return super().validate(attrs)


class WhatIfSerializer(JobSerializer):
    """A job payload to price without saving it: team and name are optional."""

    class Meta(JobSerializer.Meta):
        extra_kwargs = {
            **JobSerializer.Meta.extra_kwargs,
            "team": {"required": False},
            "name": {"required": False},
        }

    def validate(self, attrs):
        attrs.setdefault("name", "what-if")
        return super().validate(attrs)


def transition_targets() -> tuple[str, ...]:
    """Every state a transition can move a job to (scheduler.jobs.TRANSITIONS), in first-seen order."""
    return tuple(dict.fromkeys(state for targets in TRANSITIONS.values() for state in targets))


class TransitionSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=transition_targets())


class MoveSerializer(serializers.Serializer):
    dataset_id = serializers.IntegerField()
    dataset = serializers.CharField()
    source = serializers.CharField()
    destination = serializers.CharField()
    bytes = serializers.IntegerField()
    usd = serializers.DecimalField(max_digits=16, decimal_places=6)
    seconds = serializers.IntegerField()


class CandidateSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    node_id = serializers.IntegerField(allow_null=True)
    location = serializers.CharField()
    provider_kind = serializers.CharField()
    instance_type = serializers.CharField()
    spot = serializers.BooleanField()
    gpus = serializers.IntegerField()
    instance_count = serializers.IntegerField()
    usd_per_h = serializers.DecimalField(max_digits=16, decimal_places=6)
    compute_usd = serializers.DecimalField(max_digits=16, decimal_places=6)
    egress_usd = serializers.DecimalField(max_digits=16, decimal_places=6)
    total_usd = serializers.DecimalField(max_digits=16, decimal_places=6)
    transfer_s = serializers.IntegerField()
    moves = MoveSerializer(many=True)


class PlaceReportSerializer(serializers.Serializer):
    placed = serializers.ListField(child=serializers.IntegerField())
    unplaced = serializers.DictField(child=serializers.CharField())
    launches = serializers.IntegerField()
    method = serializers.CharField()
    skipped = serializers.CharField(help_text="Why the run did nothing (another run in progress); empty if it ran.")
    reclaimed = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Jobs re-queued to give borrowed GPUs back."
    )


class PlaceRunSerializer(serializers.ModelSerializer):
    """A placement run as the client polls it: its status, then its report (the caller's teams' jobs only)."""

    url = serializers.HyperlinkedIdentityField(view_name="api:placerun-detail", help_text="Poll this until finished.")
    finished = serializers.BooleanField(read_only=True, help_text="Done or failed: polling can stop.")
    report = serializers.SerializerMethodField(help_text="What the run placed and why the rest was not, once done.")

    class Meta:
        model = PlaceRun
        fields = ("id", "url", "status", "finished", "requested_at", "started_at", "finished_at", "report", "error")
        read_only_fields = fields

    @extend_schema_field(PlaceReportSerializer(allow_null=True))
    def get_report(self, run: PlaceRun) -> dict | None:
        request = self.context.get("request")
        if request is None:
            return None  # who reads it decides which jobs it may name: without a reader, none
        return selectors.place_run_report(run, user=request.user)


class PlacementSerializer(serializers.ModelSerializer):
    job_name = serializers.CharField(source="job.name", read_only=True)
    provider_kind = serializers.CharField(read_only=True)

    class Meta:
        model = Placement
        fields = (
            "id",
            "job",
            "job_name",
            "active",
            "target_kind",
            "node",
            "gpu_count",
            "provider_kind",
            "region",
            "site",
            "instance_type",
            "instance_count",
            "spot",
            "preemptible",
            "usd_per_h",
            "compute_usd",
            "egress_usd",
            "total_usd",
            "transfer_s",
            "breakdown",
            "alternatives",
            "policy_version",
            "launch_status",
            "launch_request",
            "launch_error",
            "created",
        )
        read_only_fields = fields


class FootprintSpanSerializer(serializers.Serializer):
    placement = serializers.IntegerField(source="placement_id")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    nodes = serializers.ListField(child=serializers.IntegerField(), source="node_ids")
    gpus = serializers.IntegerField(allow_null=True, help_text="GPUs held on a shared node; null: whole instances.")


class JobFootprintSerializer(serializers.Serializer):
    """A job's share of the ledger hours its placements used (scheduler.carbon.job_footprint)."""

    co2e_kg = serializers.DecimalField(
        max_digits=20, decimal_places=6, allow_null=True, help_text="null: no counted hour had a carbon figure."
    )
    energy_kwh = serializers.DecimalField(max_digits=20, decimal_places=6)
    compute_usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    energy_usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    total_usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    gpu_hours = serializers.DecimalField(max_digits=20, decimal_places=6)
    ledger_hours = serializers.IntegerField(help_text="Node-hours of the ledger counted.")
    hours_without_carbon = serializers.IntegerField(help_text="Of those, hours whose site had no intensity.")
    spans = FootprintSpanSerializer(many=True)
