"""Forms of the scheduler pages: submit a job, price a job (what-if), a team quota (admin)."""

from decimal import Decimal

from django import forms

from fleet.catalog import GPU_SPECS
from fleet.choices import ProviderKind
from fleet.models import Project, Team
from scheduler.api.serializers import MAX_EXPECTED_HOURS, MAX_GPUS_PER_JOB, PRIORITY_RANGE, job_request_errors
from scheduler.models import Dataset, Job, TeamQuota

GPU_MODEL_CHOICES = [("", "Any")] + [(key, key) for key in GPU_SPECS]


class JobForm(forms.ModelForm):
    """A job request: GPUs, time, data, constraints."""

    gpu_model = forms.ChoiceField(choices=GPU_MODEL_CHOICES, required=False, label="GPU model")
    gpu_count = forms.IntegerField(min_value=1, max_value=MAX_GPUS_PER_JOB, initial=1, label="GPUs")
    expected_hours = forms.DecimalField(
        min_value=Decimal("0.01"), max_value=MAX_EXPECTED_HOURS, decimal_places=2, max_digits=10
    )
    priority = forms.IntegerField(min_value=PRIORITY_RANGE[0], max_value=PRIORITY_RANGE[1], initial=0)
    max_usd_per_h = forms.DecimalField(
        min_value=0, max_digits=12, decimal_places=4, required=False, label="Max $/h", help_text="For the whole job."
    )
    min_gpu_memory_mib = forms.IntegerField(min_value=1, required=False, label="Min GPU memory (MiB)")
    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.order_by("name"), required=False, widget=forms.SelectMultiple(attrs={"size": 4})
    )
    allowed_providers = forms.MultipleChoiceField(
        choices=ProviderKind.choices, required=False, widget=forms.CheckboxSelectMultiple, help_text="None: any."
    )
    allowed_regions = forms.CharField(
        required=False, help_text="Comma-separated cloud regions or on-prem sites; empty: anywhere."
    )

    class Meta:
        model = Job
        fields = (
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
        )

    def __init__(self, *args, scope: list[int] | None = None, **kwargs):
        """``scope``: the ids of the teams the user may submit for and see (fleet.scoping.team_scope);
        None: every team."""
        super().__init__(*args, **kwargs)
        teams = Team.objects.order_by("name")
        projects = Project.objects.select_related("team").order_by("team__name", "name")
        if scope is not None:
            teams, projects = teams.filter(pk__in=scope), projects.filter(team_id__in=scope)
        self.fields["team"].queryset = teams
        self.fields["project"].queryset = projects

    def clean_allowed_regions(self) -> list[str]:
        regions = [r.strip() for r in self.cleaned_data["allowed_regions"].split(",") if r.strip()]
        if any(len(r) > 64 for r in regions):
            raise forms.ValidationError("A region name is at most 64 characters.")
        return regions

    def clean(self):
        cleaned = super().clean()
        errors = job_request_errors(
            team=cleaned.get("team"),
            project=cleaned.get("project"),
            gpu_model=cleaned.get("gpu_model"),
            min_gpu_memory_mib=cleaned.get("min_gpu_memory_mib"),
            allowed_regions=cleaned.get("allowed_regions"),
        )
        for name, message in errors.items():
            self.add_error(name, message)
        return cleaned


class WhatIfForm(JobForm):
    """A job to price without submitting it: no name or team needed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("name", "team", "project"):
            self.fields[name].required = False
        self.fields.pop("priority")

    def clean(self):
        cleaned = super().clean()
        cleaned.setdefault("name", "what-if")
        return cleaned

    def _post_clean(self):
        pass  # nothing is saved, so the model instance is not built or validated


class TeamQuotaForm(forms.ModelForm):
    """A team's quota of a GPU model; the rules are the model's (``TeamQuota.clean``), shown on their fields."""

    gpu_model = forms.ChoiceField(
        choices=[("", "All GPU models")] + GPU_MODEL_CHOICES[1:], required=False, label="GPU model"
    )

    class Meta:
        model = TeamQuota
        fields = ("team", "gpu_model", "guaranteed_gpus", "borrow_limit_gpus", "weight")
