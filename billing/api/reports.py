"""REST API of the email reports: subscriptions (CRUD, send-now, preview) and their deliveries (read-only)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.filtersets import ReportDeliveryFilterSet, ReportSubscriptionFilterSet
from billing.models import ReportDelivery, ReportSubscription
from billing.reports.data import report_data
from billing.reports.delivery import report_send_now
from billing.reports.periods import report_period_current, report_period_last
from billing.reports.queries import report_delivery_list
from billing.reports.render import report_render
from billing.tasks.reports import report_deliveries_enqueue
from core.api.permissions import ModelActionPermissions
from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from fleet.scoping import TeamScopedViewMixin

RECIPIENTS_MAX = 50


class ReportSubscriptionSerializer(ValidatedModelSerializer):
    """Who gets the cost report, how often (weekly, monthly) and for what (``team``; null: the whole fleet)."""

    recipients = serializers.ListField(
        child=serializers.EmailField(), allow_empty=False, max_length=RECIPIENTS_MAX, help_text="E-mail addresses."
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ReportSubscription
        fields = ("id", "name", "recipients", "period", "team", "enabled", "created_by", "created")


class ReportDeliverySerializer(serializers.ModelSerializer):
    """One report of one subscription for one period (end exclusive): pending, sending, sent or failed (retried);
    ``resent``: sent again after a send that may have reached the mail server (same Message-ID)."""

    class Meta:
        model = ReportDelivery
        fields = (
            "id",
            "subscription",
            "period_start",
            "period_end",
            "manual",
            "status",
            "attempts",
            "last_error",
            "total_usd",
            "created",
            "sent_at",
            "message_id",
            "resent",
        )
        read_only_fields = fields


class ReportPreviewSerializer(serializers.Serializer):
    """The report as it would be emailed now."""

    period_start = serializers.DateField()
    period_end = serializers.DateField(help_text="Exclusive.")
    subject = serializers.CharField()
    total_usd = serializers.DecimalField(max_digits=16, decimal_places=2)
    text = serializers.CharField()
    html = serializers.CharField(help_text="The email's HTML; the chart is referenced as cid:spend-chart@fleetdeck.")


class ReportSubscriptionViewSet(TeamScopedViewMixin, FleetdeckModelViewSet):
    """Email report subscriptions; operators and admins write, viewers read. A viewer limited to teams sees only
    those teams' subscriptions (others: 404), never whole-fleet ones."""

    queryset = ReportSubscription.objects.select_related("team", "created_by")
    serializer_class = ReportSubscriptionSerializer
    filterset_class = ReportSubscriptionFilterSet

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    @extend_schema(request=None, responses={202: ReportDeliverySerializer})
    @action(detail=True, methods=["post"], url_path="send-now", permission_classes=[ModelActionPermissions])
    def send_now(self, request, pk=None):
        """Queue a manual delivery of the last complete period now (outside the schedule)."""
        with transaction.atomic():
            delivery = report_send_now(subscription=self.get_object())
            report_deliveries_enqueue(delivery_ids=[delivery.pk])
        return Response(ReportDeliverySerializer(delivery).data, status=202)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "which", str, enum=["last", "current"], description="The period: last complete or current."
            )
        ],
        responses={200: ReportPreviewSerializer},
    )
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        """The report's subject, text and HTML for the last complete period (or the current one so far)."""
        subscription = self.get_object()
        which = request.query_params.get("which", "last")
        if which not in ("last", "current"):
            raise serializers.ValidationError({"which": ["Choose 'last' or 'current'."]})
        bounds = report_period_current if which == "current" else report_period_last
        start, end = bounds(period=subscription.period, now=timezone.now())
        rendered = report_render(report_data(subscription=subscription, period_start=start, period_end=end))
        payload = {
            "period_start": start,
            "period_end": end,
            "subject": rendered.subject,
            "total_usd": rendered.total_usd,
            "text": rendered.text,
            "html": rendered.html,
        }
        return Response(ReportPreviewSerializer(payload).data)


class ReportDeliveryViewSet(TeamScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """Report deliveries, newest first: filter by subscription and status to find failed sends."""

    queryset = report_delivery_list()
    serializer_class = ReportDeliverySerializer
    filterset_class = ReportDeliveryFilterSet


def register(router) -> None:
    """Add the report viewsets to the API router."""
    router.register("report-subscriptions", ReportSubscriptionViewSet, basename="report-subscription")
    router.register("report-deliveries", ReportDeliveryViewSet, basename="report-delivery")


urlpatterns: list = []
