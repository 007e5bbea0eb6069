"""Admin pages of the fleet app."""

from django.contrib import admin

from fleet.models import GPU, Node, Project, PromQLSource, Provider, Site, SyncRun, Team


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "account_id", "credential_ref", "enabled")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "account_id")


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "region", "zone", "continent", "electricity_usd_per_kwh", "pue")
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


@admin.register(GPU)
class GPUAdmin(admin.ModelAdmin):
    list_display = ("uuid", "node", "index", "model", "memory_mib", "power_limit_w")
    list_filter = ("model",)
    search_fields = ("uuid", "node__name", "model")
    list_select_related = ("node",)
    raw_id_fields = ("node",)


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
