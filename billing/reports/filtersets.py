"""Filter sets of report subscriptions and deliveries (API lists)."""

import django_filters as filters

from billing.choices import DeliveryStatus, ReportPeriod
from billing.models import ReportDelivery, ReportSubscription
from core.filters import FleetdeckFilterSet, StableOrderingFilter


class ReportSubscriptionFilterSet(FleetdeckFilterSet):
    period = filters.MultipleChoiceFilter(choices=ReportPeriod.choices)
    ordering = StableOrderingFilter(fields=("name", "period", "created"))

    class Meta:
        model = ReportSubscription
        fields = ("team", "enabled")


class ReportDeliveryFilterSet(FleetdeckFilterSet):
    status = filters.MultipleChoiceFilter(choices=DeliveryStatus.choices)
    ordering = StableOrderingFilter(fields=("created", "period_start", "sent_at", "status"))

    class Meta:
        model = ReportDelivery
        fields = ("subscription", "manual", "period_start")
