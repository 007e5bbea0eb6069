"""Filter sets of the scheduler, shared by its pages and the REST API."""

import django_filters as filters

from core.filters import FleetdeckFilterSet, IdModelChoiceFilter, ModelMultipleKeyFilter, StableOrderingFilter
from fleet.choices import ProviderKind
from fleet.models import Team
from scheduler.choices import JobState, TargetKind
from scheduler.models import Dataset, Job, Placement, TeamQuota


class DatasetFilterSet(FleetdeckFilterSet):
    provider_kind = filters.MultipleChoiceFilter(choices=ProviderKind.choices)
    ordering = StableOrderingFilter(fields=("name", "size_bytes", "created"))

    class Meta:
        model = Dataset
        fields = ("name", "provider_kind", "region", "site")


class JobFilterSet(FleetdeckFilterSet):
    state = filters.MultipleChoiceFilter(choices=JobState.choices)
    team = ModelMultipleKeyFilter(field_name="team__slug", queryset=Team.objects.all(), to_field_name="slug")
    ordering = StableOrderingFilter(fields=("name", "priority", "created", "state"))

    class Meta:
        model = Job
        fields = ("state", "team", "project", "gpu_model")


def visible_jobs(request):
    """The jobs a placement filter may name: those of the requesting user's teams (Job.objects.restrict),
    so another team's job is refused as one that does not exist."""
    if request is None:
        return Job.objects.all()
    return Job.objects.restrict(request.user)


class PlacementFilterSet(FleetdeckFilterSet):
    job = IdModelChoiceFilter(queryset=visible_jobs)
    target_kind = filters.MultipleChoiceFilter(choices=TargetKind.choices)
    ordering = StableOrderingFilter(fields=("created", "total_usd"))

    class Meta:
        model = Placement
        fields = ("job", "active", "node", "provider_kind", "target_kind")


class TeamQuotaFilterSet(FleetdeckFilterSet):
    """Quotas by team slug and GPU model."""

    team = ModelMultipleKeyFilter(field_name="team__slug", queryset=Team.objects.all(), to_field_name="slug")
    ordering = StableOrderingFilter(fields=("gpu_model", "guaranteed_gpus", "created"))

    class Meta:
        model = TeamQuota
        fields = ("team", "gpu_model")
