"""Admin pages of the fleet app."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from fleet.health_events import health_event_resolve
from fleet.models import GPU, GpuSlice, HealthEvent, Node, Project, PromQLSource, Provider, Site, SyncRun, Team
from fleet.slices import slice_extra_errors


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "account_id", "credential_ref", "enabled")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "account_id")


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "provider",
        "region",
        "zone",
        "continent",
        "electricity_usd_per_kwh",
        "pue",
        "carbon_g_per_kwh",
    )
    list_filter = ("provider__kind", "continent")
    search_fields = ("name", "region")
    list_select_related = ("provider",)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name",)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "team")
    list_filter = ("team",)
    prepopulated_fields = {"slug": ("name",)}
    list_select_related = ("team",)


class GPUInline(admin.TabularInline):
    model = GPU
    extra = 0


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "site", "instance_type", "lifecycle", "state", "team", "project", "last_seen")
    list_filter = ("state", "lifecycle", "site__provider__kind", "team")
    search_fields = ("name", "external_id", "instance_type")
    list_select_related = ("site", "team", "project__team")
    raw_id_fields = ("project",)
    inlines = (GPUInline,)


class GpuSliceForm(forms.ModelForm):
    """GpuSlice.clean (run by the form) plus the checks the API makes too (fleet.slices.slice_extra_errors)."""

    class Meta:
        model = GpuSlice
        fields = ("gpu", "kind", "name", "units", "of_units", "team", "project")

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            for field, message in slice_extra_errors(self.instance_with(cleaned)).items():
                self.add_error(field, message)
        return cleaned

    def instance_with(self, cleaned) -> GpuSlice:
        candidate = GpuSlice(pk=self.instance.pk)
        for field in self._meta.fields:
            if field in cleaned:
                setattr(candidate, field, cleaned[field])
        if "gpu" not in cleaned and self.instance.gpu_id:  # an inline: the GPU is the parent's
            candidate.gpu = self.instance.gpu
        return candidate


class GpuSliceInline(admin.TabularInline):
    """A GPU's slices. Each row is checked against the GPU's saved slices: add a GPU's slices one save at a time
    when they are near its size (two new rows saved together are not checked against each other)."""

    model = GpuSlice
    form = GpuSliceForm
    extra = 0
    raw_id_fields = ("project",)


@admin.register(GPU)
class GPUAdmin(admin.ModelAdmin):
    list_display = ("uuid", "node", "index", "model", "memory_mib", "power_limit_w")
    list_filter = ("model",)
    search_fields = ("uuid", "node__name", "model")
    list_select_related = ("node",)
    raw_id_fields = ("node",)
    inlines = (GpuSliceInline,)


@admin.register(GpuSlice)
class GpuSliceAdmin(admin.ModelAdmin):
    """MIG instances (synced from telemetry; set their team and project here) and time-sliced replicas."""

    form = GpuSliceForm
    list_display = ("name", "gpu", "kind", "units", "of_units", "team", "project")
    list_filter = ("kind", "team")
    search_fields = ("name", "gpu__uuid", "gpu__node__name")
    list_select_related = ("gpu__node", "team", "project__team")
    raw_id_fields = ("gpu", "project")


@admin.register(HealthEvent)
class HealthEventAdmin(admin.ModelAdmin):
    """GPU health events as telemetry recorded them; an operator only marks them resolved."""

    list_display = ("occurred_at", "node", "gpu", "kind", "code", "message", "resolved_at")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("node__name", "gpu__uuid", "message")
    list_select_related = ("node", "gpu__node")
    readonly_fields = ("gpu", "node", "occurred_at", "kind", "code", "message", "resolved_at")
    actions = ("mark_resolved",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Mark resolved", permissions=["change"])
    def mark_resolved(self, request, queryset) -> None:
        """Resolve the selected open events now; events resolved already are left as they are."""
        now = timezone.now()
        events = list(queryset.filter(resolved_at__isnull=True))
        skipped = queryset.count() - len(events)
        done = 0
        for event in events:
            try:
                health_event_resolve(event=event, at=now, now=now)
            except ValidationError:
                skipped += 1  # resolved meanwhile, or it occurred after now (a clock ahead)
            else:
                done += 1
        self.message_user(request, f"{done} event(s) marked resolved.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} event(s) were not open and were left as they are.", messages.WARNING)


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    """Syncs asked for through the API, as a record: they are created by POST /providers/{id}/sync/ only."""

    list_display = ("pk", "provider", "status", "requested_at", "finished_at")
    list_filter = ("status", "provider")
    list_select_related = ("provider",)
    readonly_fields = ("provider", "force", "status", "requested_at", "started_at", "finished_at", "report", "error")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PromQLSource)
class PromQLSourceAdmin(admin.ModelAdmin):
    """Prometheus-compatible APIs Fleetdeck reads dcgm-exporter series from (fleet.telemetry.promql)."""

    list_display = ("name", "site", "url", "enabled", "read_until", "last_success_at", "consecutive_failures")
    list_filter = ("enabled", "site")
    search_fields = ("name", "url")
    list_select_related = ("site",)
    readonly_fields = ("read_until", "last_success_at", "last_error", "consecutive_failures", "created")
