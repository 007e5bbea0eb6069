"""Budgets API: monthly budgets of teams and projects with this month's status, and the alerts they sent, within
the caller's team scope (fleet.scoping: a budget is its team's, or its project's team's)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from billing import selectors
from billing.api.common import DECIMAL, BudgetAlertKindField
from billing.filtersets import BudgetAlertFilterSet, BudgetFilterSet
from billing.models import Budget, BudgetAlert
from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from fleet.scoping import TeamScopedViewMixin


class BudgetSerializer(ValidatedModelSerializer):
    """A budget with this month's spend, forecast, % of the budget and state (read-only)."""

    month_spend_usd = serializers.SerializerMethodField()
    month_forecast_usd = serializers.SerializerMethodField()
    month_pct = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = (
            "id",
            "team",
            "project",
            "monthly_usd",
            "thresholds_pct",
            "alert_on_forecast",
            "recipients",
            "created",
            "month_spend_usd",
            "month_forecast_usd",
            "month_pct",
            "state",
        )

    def _status(self, budget: Budget) -> selectors.BudgetStatus:
        statuses = self.context.setdefault("statuses", {})
        if budget.pk not in statuses:
            statuses.update(selectors.budget_statuses([budget]))
        return statuses[budget.pk]

    @extend_schema_field(DECIMAL)
    def get_month_spend_usd(self, budget) -> str:
        return str(self._status(budget).spend_usd)

    @extend_schema_field(DECIMAL)
    def get_month_forecast_usd(self, budget) -> str:
        return str(self._status(budget).forecast_usd)

    @extend_schema_field(DECIMAL)
    def get_month_pct(self, budget) -> str:
        return str(self._status(budget).pct)

    def get_state(self, budget) -> str:
        return self._status(budget).state

    def validate(self, attrs):
        """A caller limited to some teams budgets only for them (the team's, or a project's team)."""
        attrs = super().validate(attrs)
        scope = self.context.get("scope")
        if scope is not None:
            team = attrs.get("team", getattr(self.instance, "team", None))
            project = attrs.get("project", getattr(self.instance, "project", None))
            owner = team.pk if team is not None else (project.team_id if project is not None else None)
            if owner not in scope:
                field = "project" if team is None and project is not None else "team"
                raise serializers.ValidationError({field: "Choose one of your own teams."})
        return attrs

    def validate_thresholds_pct(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each threshold once.")
        return sorted(value)


class BudgetAlertSerializer(serializers.ModelSerializer):
    """One alert of one budget in one month (read-only)."""

    kind = BudgetAlertKindField(read_only=True)

    class Meta:
        model = BudgetAlert
        fields = (
            "id",
            "budget",
            "month",
            "kind",
            "threshold_pct",
            "spend_usd",
            "forecast_usd",
            "created",
            "sent_at",
            "last_error",
        )
        read_only_fields = fields


class BudgetViewSet(TeamScopedViewMixin, FleetdeckModelViewSet):
    """Monthly budgets of teams and projects, with this month's spend, forecast, % and state (read-only)."""

    queryset = Budget.objects.select_related("team", "project")
    serializer_class = BudgetSerializer
    filterset_class = BudgetFilterSet

    def get_serializer(self, *args, **kwargs):
        if args and isinstance(args[0], list):  # a list page: every status in two queries
            kwargs.setdefault("context", self.get_serializer_context())["statuses"] = selectors.budget_statuses(args[0])
        return super().get_serializer(*args, **kwargs)


class BudgetAlertViewSet(TeamScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """Alerts sent (or due) for budgets: one per budget, month, kind and threshold."""

    queryset = BudgetAlert.objects.all()
    serializer_class = BudgetAlertSerializer
    filterset_class = BudgetAlertFilterSet


def register(router) -> None:
    """Add the budget and budget alert viewsets to ``router``."""
    router.register("budgets", BudgetViewSet)
    router.register("budget-alerts", BudgetAlertViewSet)


urlpatterns: list = []
