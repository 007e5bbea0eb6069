"""Admin pages of the scheduler: datasets (located from their URI or site), jobs, placements (read-only), team
quotas."""

from django import forms
from django.contrib import admin

from scheduler.datasets import dataset_place_resolve
from scheduler.forms import TeamQuotaForm
from scheduler.models import Dataset, Job, Placement, TeamQuota


class DatasetAdminForm(forms.ModelForm):
    """A dataset whose provider kind and region come from its URI (S3 looked up, gs:// given) or on-prem site."""

    class Meta:
        model = Dataset
        fields = ("name", "uri", "region", "site", "size_bytes")

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            place = dataset_place_resolve(
                uri=cleaned.get("uri", ""), region=cleaned.get("region", ""), site=cleaned.get("site")
            )
            self.instance.provider_kind = place.provider_kind
            cleaned["region"] = place.region
        return cleaned


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    form = DatasetAdminForm
    list_display = ("name", "provider_kind", "region", "site", "size_bytes", "created")
    list_filter = ("provider_kind",)
    search_fields = ("name", "uri")
    list_select_related = ("site",)


class PlacementInline(admin.TabularInline):
    model = Placement
    extra = 0
    can_delete = False
    fields = ("active", "target_kind", "node", "region", "instance_type", "preemptible", "total_usd", "created")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "project", "gpu_count", "gpu_model", "expected_hours", "priority", "state")
    list_filter = ("state", "team")
    search_fields = ("name",)
    list_select_related = ("team", "project")
    readonly_fields = ("state", "pending_reason", "started_at", "ended_at", "created")
    filter_horizontal = ("datasets",)
    inlines = (PlacementInline,)


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = ("job", "active", "target_kind", "node", "preemptible", "region", "total_usd", "created")
    list_filter = ("active", "target_kind", "provider_kind", "launch_status", "preemptible")
    list_select_related = ("job", "node")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TeamQuota)
class TeamQuotaAdmin(admin.ModelAdmin):
    """Team quotas, edited through TeamQuotaForm (the model's rules, field by field)."""

    form = TeamQuotaForm
    list_display = ("team", "gpu_model", "guaranteed_gpus", "borrow_limit_gpus", "weight", "updated")
    list_filter = ("gpu_model",)
    search_fields = ("team__name",)
    list_select_related = ("team",)
