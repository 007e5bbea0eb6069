"""Reads of report subscriptions and deliveries for the pages and the API (scope them with ``.restrict(user)``,
fleet.scoping: a viewer limited to teams sees only those teams' subscriptions, never whole-fleet ones)."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from billing.models import ReportDelivery, ReportSubscription

RECENT_DELIVERIES = 20


def report_subscription_list() -> QuerySet[ReportSubscription]:
    """Subscriptions with their team and the status, period, error and time of their latest delivery."""
    latest = ReportDelivery.objects.filter(subscription=OuterRef("pk")).order_by("-created", "-pk")
    return (
        ReportSubscription.objects.select_related("team")
        .annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_period_start=Subquery(latest.values("period_start")[:1]),
            last_error=Subquery(latest.values("last_error")[:1]),
            last_attempts=Subquery(latest.values("attempts")[:1]),
            last_sent_at=Subquery(latest.values("sent_at")[:1]),
            last_total_usd=Subquery(latest.values("total_usd")[:1]),
        )
        .order_by("name", "pk")
    )


def report_delivery_list() -> QuerySet[ReportDelivery]:
    """Deliveries, newest first, with their subscription (and its team)."""
    return ReportDelivery.objects.select_related("subscription__team").order_by("-created", "-pk")
