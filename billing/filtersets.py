"""Filter sets of the billing API's lists: prices, egress records, the ledger, budgets, budget alerts and reports
(one definition of every billing filter, as fleet/filtersets.py and scheduler/filtersets.py)."""

from __future__ import annotations

from datetime import timedelta

import django_filters as filters

from billing.choices import (
    BudgetAlertKind,
    CommitmentBasis,
    CommitmentKind,
    DeliveryStatus,
    EgressCause,
    LocationClass,
    PriceSource,
    PurchaseOption,
    ReportPeriod,
)
from billing.models import (
    Budget,
    BudgetAlert,
    Commitment,
    Discount,
    EgressRate,
    EgressRecord,
    InstancePrice,
    LedgerEntry,
    OnPremCostModel,
    ReportDelivery,
    ReportSubscription,
)
from billing.rates import PriceBook
from billing.selectors import LATEST_DAY, day_bounds
from core.filters import FleetdeckFilterSet, StableOrderingFilter
from fleet.choices import ProviderKind

CLOUD_KIND_CHOICES = [c for c in ProviderKind.choices if c[0] != ProviderKind.ONPREM]


# --- prices ---------------------------------------------------------------------------------------------------
class InstancePriceFilterSet(FleetdeckFilterSet):
    """Prices by provider kind, region, type, GPU model and source; ``at`` keeps the rows in force on a day."""

    provider_kind = filters.MultipleChoiceFilter(choices=CLOUD_KIND_CHOICES)
    source = filters.MultipleChoiceFilter(choices=PriceSource.choices)
    gpu_model = filters.CharFilter()
    at = filters.DateFilter(method="filter_at", label="In force on (YYYY-MM-DD)")
    ordering = StableOrderingFilter(
        fields=(
            "provider_kind",
            "region",
            "instance_type",
            "gpu_model",
            "gpu_count",
            "on_demand_usd_per_h",
            "spot_usd_per_h",
            "effective_from",
            "source",
        )
    )

    class Meta:
        model = InstancePrice
        fields = ("region", "instance_type", "effective_from")

    def filter_at(self, queryset, name, value):
        return queryset.filter(pk__in=PriceBook.load(day=value).in_force_ids())


class DiscountFilterSet(FleetdeckFilterSet):
    """Discounts by provider (id or name), purchase option and start day."""

    applies_to = filters.MultipleChoiceFilter(choices=PurchaseOption.choices)
    provider_name = filters.CharFilter(field_name="provider__name")
    ordering = StableOrderingFilter(fields=(("provider__name", "provider"), "percent", "effective_from"))

    class Meta:
        model = Discount
        fields = ("provider", "effective_from")


class CommitmentFilterSet(FleetdeckFilterSet):
    """Commitments by provider, kind, basis, team, region and type; ``at`` keeps those in force on a day."""

    kind = filters.MultipleChoiceFilter(choices=CommitmentKind.choices)
    basis = filters.MultipleChoiceFilter(choices=CommitmentBasis.choices)
    at = filters.DateFilter(method="filter_at", label="In force on (YYYY-MM-DD)")
    ordering = StableOrderingFilter(fields=("name", "start", "end", "kind", ("provider__name", "provider")))

    class Meta:
        model = Commitment
        fields = ("provider", "team", "region", "instance_type")

    def filter_at(self, queryset, name, value):
        return queryset.filter(start__lte=value, end__gt=value)


class OnPremCostModelFilterSet(FleetdeckFilterSet):
    """On-prem cost models by site (id or name), node, GPU model and start day."""

    site_name = filters.CharFilter(field_name="site__name")
    ordering = StableOrderingFilter(
        fields=(("site__name", "site"), ("node__name", "node"), "gpu_model", "effective_from")
    )

    class Meta:
        model = OnPremCostModel
        fields = ("site", "node", "gpu_model", "effective_from")


class EgressRateFilterSet(FleetdeckFilterSet):
    """Egress rates by provider kind, destination class and start day."""

    provider_kind = filters.MultipleChoiceFilter(choices=ProviderKind.choices)
    location_class = filters.MultipleChoiceFilter(choices=LocationClass.choices)
    ordering = StableOrderingFilter(
        fields=("provider_kind", "location_class", "tier_start_gb", "usd_per_gb", "effective_from")
    )

    class Meta:
        model = EgressRate
        fields = ("effective_from",)


# --- spend ----------------------------------------------------------------------------------------------------
class PeriodFilterSet(FleetdeckFilterSet):
    """``from``/``to`` (UTC days, inclusive) on the model's time field, named by ``time_field``."""

    time_field = "occurred_at"

    def filter_from(self, queryset, name, value):
        return queryset.filter(**{f"{self.time_field}__gte": day_bounds(value, value)[0]})

    def filter_to(self, queryset, name, value):
        if value >= LATEST_DAY:
            return queryset
        return queryset.filter(**{f"{self.time_field}__lt": day_bounds(value + timedelta(days=1), value)[0]})

    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = filters.DateFilter(method="filter_from", label="From (UTC day)")
    locals()["to"] = filters.DateFilter(method="filter_to", label="To (UTC day, inclusive)")


class EgressRecordFilterSet(PeriodFilterSet):
    """Egress records by period, team, project, route, cause and planned."""

    cause = filters.MultipleChoiceFilter(choices=EgressCause.choices)
    ordering = StableOrderingFilter(fields=("occurred_at", "usd", "bytes"))

    class Meta:
        model = EgressRecord
        fields = ("team", "project", "source", "destination", "planned")


class LedgerEntryFilterSet(PeriodFilterSet):
    """Ledger rows by period (their hour), node, team, project, site, provider and lifecycle."""

    time_field = "hour"
    ordering = StableOrderingFilter(fields=("hour", "compute_usd", "idle_usd", "node"))

    class Meta:
        model = LedgerEntry
        fields = ("node", "team", "project", "site", "provider", "lifecycle")


class BudgetFilterSet(FleetdeckFilterSet):
    """Budgets by team and project."""

    ordering = StableOrderingFilter(fields=("monthly_usd", "created"))

    class Meta:
        model = Budget
        fields = ("team", "project")


class BudgetAlertFilterSet(FleetdeckFilterSet):
    """Budget alerts by budget, month and kind."""

    kind = filters.MultipleChoiceFilter(choices=BudgetAlertKind.choices)
    ordering = StableOrderingFilter(fields=("month", "created", "sent_at"))

    class Meta:
        model = BudgetAlert
        fields = ("budget", "month")


# --- reports --------------------------------------------------------------------------------------------------
class ReportSubscriptionFilterSet(FleetdeckFilterSet):
    """Report subscriptions by period, team and enabled."""

    period = filters.MultipleChoiceFilter(choices=ReportPeriod.choices)
    ordering = StableOrderingFilter(fields=("name", "period", "created"))

    class Meta:
        model = ReportSubscription
        fields = ("team", "enabled")


class ReportDeliveryFilterSet(FleetdeckFilterSet):
    """Report deliveries by subscription, status, manual and period start."""

    status = filters.MultipleChoiceFilter(choices=DeliveryStatus.choices)
    ordering = StableOrderingFilter(fields=("created", "period_start", "sent_at", "status"))

    class Meta:
        model = ReportDelivery
        fields = ("subscription", "manual", "period_start")
