"""Admin pages of the billing app: prices and cost models are edited here; the ledger is read-only."""

from django.contrib import admin

from billing.choices import PriceSource
from billing.models import (
    BilledCost,
    Budget,
    BudgetAlert,
    Commitment,
    CommitmentHour,
    Discount,
    EgressRate,
    EgressRecord,
    GridIntensity,
    GridIntensityHour,
    InstancePrice,
    LedgerDay,
    LedgerEntry,
    OnPremCostModel,
    ProviderPue,
    ReportDelivery,
    ReportSubscription,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by Fleetdeck itself: browsable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- prices --------------------------------------------------------------------------------------------------
@admin.register(InstancePrice)
class InstancePriceAdmin(admin.ModelAdmin):
    """A new price is a new row from its day; added here, it is an override that beats every other source."""

    list_display = (
        "instance_type",
        "provider_kind",
        "region",
        "gpu_model",
        "gpu_count",
        "on_demand_usd_per_h",
        "spot_usd_per_h",
        "effective_from",
        "source",
    )
    list_filter = ("provider_kind", "source", "gpu_model", "region", "effective_from")
    search_fields = ("instance_type", "region", "gpu_model", "note")
    date_hierarchy = "effective_from"
    readonly_fields = ("created",)

    def get_changeform_initial_data(self, request):
        return {**super().get_changeform_initial_data(request), "source": PriceSource.OVERRIDE}

    def get_readonly_fields(self, request, obj=None):
        # Shipped and Price List rows are reloaded by their commands; correct them with an override instead.
        if obj is not None and obj.source != PriceSource.OVERRIDE:
            return [f.name for f in self.model._meta.fields]
        return ("created",)


@admin.register(Discount)
class DiscountAdmin(admin.ModelAdmin):
    list_display = ("provider", "percent", "applies_to", "effective_from", "effective_to", "note")
    list_filter = ("applies_to", "provider__kind", "provider")
    search_fields = ("provider__name", "note")
    list_select_related = ("provider",)


@admin.register(OnPremCostModel)
class OnPremCostModelAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "site",
        "node",
        "gpu_model",
        "purchase_usd_per_gpu",
        "amortisation_months",
        "ops_usd_per_gpu_year",
        "usd_per_gpu_hour",
        "effective_from",
    )
    list_filter = ("site", "gpu_model")
    search_fields = ("site__name", "node__name", "gpu_model", "note")
    list_select_related = ("site", "node")
    raw_id_fields = ("node",)
    readonly_fields = ("usd_per_gpu_hour",)

    @admin.display(description="$/GPU-hour (excl. energy)")
    def usd_per_gpu_hour(self, obj) -> str:
        if obj.purchase_usd_per_gpu is None or not obj.amortisation_months or obj.ops_usd_per_gpu_year is None:
            return "—"
        return f"{obj.usd_per_gpu_hour:.4f}"


@admin.register(EgressRate)
class EgressRateAdmin(admin.ModelAdmin):
    """Change a rate by adding a row with a later effective_from: a past rate stays true for the past."""

    list_display = ("provider_kind", "location_class", "tier_start_gb", "usd_per_gb", "effective_from", "note")
    list_filter = ("provider_kind", "location_class", "effective_from")
    search_fields = ("note",)


# --- carbon (billing.carbon; provenance in billing/data/README.md) ---------------------------------------------
@admin.register(GridIntensity)
class GridIntensityAdmin(admin.ModelAdmin):
    """The shipped per-region dataset (load_prices); an edited figure is reverted by the next load if the shipped
    file still differs, so correct a site with its carbon_g_per_kwh instead, or add a region the file lacks."""

    list_display = ("provider_kind", "region", "g_per_kwh", "source")
    list_filter = ("provider_kind",)
    search_fields = ("region", "source")


@admin.register(ProviderPue)
class ProviderPueAdmin(admin.ModelAdmin):
    """Each cloud's published PUE: cloud kWh = measured GPU kWh × PUE."""

    list_display = ("provider_kind", "pue", "source")


@admin.register(GridIntensityHour)
class GridIntensityHourAdmin(admin.ModelAdmin):
    """Imported hourly values (manage.py import_carbon, POST /api/v1/carbon/intensities/import/)."""

    list_display = ("site", "hour", "g_per_kwh")
    list_filter = ("site",)
    list_select_related = ("site",)
    date_hierarchy = "hour"


# --- commitments (billing.commitments applies them in the ledger) -------------------------------------------------
@admin.register(Commitment)
class CommitmentAdmin(admin.ModelAdmin):
    """Reserved instances, savings plans, committed-use discounts; saving runs Commitment.clean (terms, overlap,
    catalogue). The ledger re-costs recent hours by itself: backfill past days after editing one."""

    list_display = ("name", "provider", "kind", "basis", "region", "instance_type", "count", "hourly_commitment_usd",
                    "discount_pct", "start", "end", "team")  # fmt: skip
    list_filter = ("kind", "basis", "provider", "team")
    search_fields = ("name", "instance_type", "region", "note")
    list_select_related = ("provider", "team")
    readonly_fields = ("created",)


@admin.register(CommitmentHour)
class CommitmentHourAdmin(ReadOnlyAdmin):
    list_display = ("hour", "commitment", "committed_usd", "used_usd", "unused_usd", "eligible_list_usd",
                    "covered_list_usd")  # fmt: skip
    list_filter = ("commitment",)
    list_select_related = ("commitment",)
    date_hierarchy = "hour"


# --- ledger (written by the ledger service) ---------------------------------------------------------------------
@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("hour", "node", "provider_kind", "site", "team", "gpu_count", "compute_usd", "energy_usd", "priced")
    list_filter = ("provider_kind", "priced", "lifecycle", "site")
    search_fields = ("node__name", "gpu_model")
    list_select_related = ("node", "site", "team")
    date_hierarchy = "hour"


@admin.register(LedgerDay)
class LedgerDayAdmin(ReadOnlyAdmin):
    list_display = ("day", "provider_kind", "site", "team", "project", "gpu_model", "nodes", "total_usd")
    list_filter = ("provider_kind", "site", "team")
    list_select_related = ("site", "team", "project__team")
    date_hierarchy = "day"


@admin.register(EgressRecord)
class EgressRecordAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "source", "destination", "location_class", "bytes", "usd", "cause", "planned")
    list_filter = ("source_provider_kind", "location_class", "cause", "planned")
    search_fields = ("source", "destination", "external_key")
    date_hierarchy = "occurred_at"


@admin.register(BilledCost)
class BilledCostAdmin(ReadOnlyAdmin):
    list_display = ("provider", "day", "usd", "fetched_at")
    list_filter = ("provider",)
    list_select_related = ("provider",)
    date_hierarchy = "day"


# --- budgets and reports ----------------------------------------------------------------------------------------
class BudgetAlertInline(admin.TabularInline):
    model = BudgetAlert
    extra = 0
    can_delete = False
    readonly_fields = (
        "month",
        "kind",
        "threshold_pct",
        "spend_usd",
        "forecast_usd",
        "created",
        "sent_at",
        "last_error",
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "team", "project", "monthly_usd", "alert_on_forecast")
    list_filter = ("team", "alert_on_forecast")
    search_fields = ("team__name", "project__name")
    list_select_related = ("team", "project__team")
    inlines = (BudgetAlertInline,)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ("budget", "month", "kind", "threshold_pct", "spend_usd", "forecast_usd", "sent_at")
    list_filter = ("kind", "month")
    list_select_related = ("budget__team", "budget__project__team")


class ReportDeliveryInline(admin.TabularInline):
    model = ReportDelivery
    extra = 0
    can_delete = False
    readonly_fields = (
        "period_start",
        "period_end",
        "manual",
        "status",
        "attempts",
        "last_error",
        "total_usd",
        "sent_at",
        "resent",
        "message_id",
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("name", "period", "team", "enabled", "created_by", "created")
    list_filter = ("period", "enabled", "team")
    search_fields = ("name",)
    list_select_related = ("team", "created_by")
    readonly_fields = ("created_by", "created")
    inlines = (ReportDeliveryInline,)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ReportDelivery)
class ReportDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "subscription",
        "period_start",
        "period_end",
        "status",
        "attempts",
        "total_usd",
        "sent_at",
        "resent",
    )
    list_filter = ("status", "manual", "resent")
    readonly_fields = ("message_id", "resent")
    search_fields = ("subscription__name",)
    list_select_related = ("subscription",)
