"""Spend API: summaries grouped by any dimension (JSON or CSV), egress by route, egress records, budgets with
their status this month, budget alerts, the hourly ledger and reconciliation — all within the caller's team
scope (billing.scoping)."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import django_filters as filters
from django.db.models import Q
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, viewsets
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors
from billing.choices import BudgetAlertKind, EgressCause
from billing.models import Budget, BudgetAlert, EgressRecord, LedgerDay, LedgerEntry
from billing.scoping import spend_team_scope, teams_in_scope
from core.api.fields import IdField
from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from core.csv import SafeWriter
from core.filters import FleetdeckFilterSet, StableOrderingFilter
from fleet.choices import ProviderKind
from fleet.models import Provider

MAX_PK = 2**31 - 1
# The bounds live with the check both the API and the spend page use (selectors.period_errors).
EARLIEST_DAY, LATEST_DAY, MAX_RANGE_DAYS = selectors.EARLIEST_DAY, selectors.LATEST_DAY, selectors.MAX_RANGE_DAYS
MONEY = {"max_digits": 20, "decimal_places": 6, "read_only": True}
DECIMAL = serializers.DecimalField(max_digits=20, decimal_places=6)


# --- query parameters --------------------------------------------------------------------------------------
class PeriodSerializer(serializers.Serializer):
    """``from``/``to`` (UTC days, both inclusive; default this month to today) and ``team`` (repeatable)."""

    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    team = serializers.ListField(child=IdField(max_value=MAX_PK), required=False, max_length=100)

    def get_fields(self):
        fields = super().get_fields()
        # "from" is a Python keyword, so the fields are declared under other names.
        fields["from"], fields["to"] = fields.pop("date_from"), fields.pop("date_to")
        return fields

    def validate(self, attrs):
        today = selectors.utc_today()
        start = attrs.get("from") or selectors.month_start_of(today)
        last = attrs.get("to") or max(today, start)
        errors = selectors.period_errors(start=start, last=last)
        if errors:
            raise serializers.ValidationError(errors)
        return {**attrs, "start": start, "end": last + timedelta(days=1), "last": last}


class SummaryParamsSerializer(PeriodSerializer):
    group_by = serializers.ChoiceField(choices=selectors.SPEND_DIMENSIONS, default="provider")


PERIOD_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First UTC day (default: the 1st of this month)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last UTC day, inclusive (default: today)."),
    OpenApiParameter("team", OpenApiTypes.INT, many=True, description="Team ids (repeat for several)."),
]


def _scoped_teams(request, requested: list[int] | None) -> list[int] | None:
    """The caller's scope narrowed by ``?team=``; a team outside a limited scope is refused."""
    scope = spend_team_scope(request.user)
    if scope is not None and requested and not set(requested) <= set(scope):
        raise exceptions.PermissionDenied("You can see only the spend of your own teams.")
    return teams_in_scope(scope=scope, requested=requested)


# Choice sets shared with other apps' fields are documented as strings: as enums, drf-spectacular would name
# them after the field and warn about the clash with same-named fields of other choice sets.
@extend_schema_field({"type": "string", "description": "One of: " + ", ".join(ProviderKind.values) + "."})
class ProviderKindField(serializers.ChoiceField):
    """A provider kind (aws, gcp, onprem)."""

    def __init__(self, **kwargs):
        super().__init__(choices=ProviderKind.choices, **kwargs)


@extend_schema_field({"type": "string", "description": "One of: " + ", ".join(BudgetAlertKind.values) + "."})
class BudgetAlertKindField(serializers.ChoiceField):
    """A budget alert kind (threshold, forecast)."""

    def __init__(self, **kwargs):
        super().__init__(choices=BudgetAlertKind.choices, **kwargs)


# --- output serializers ------------------------------------------------------------------------------------
class SpendFiguresSerializer(serializers.Serializer):
    compute_usd = serializers.DecimalField(**MONEY)
    energy_usd = serializers.DecimalField(**MONEY)
    total_usd = serializers.DecimalField(**MONEY)
    idle_usd = serializers.DecimalField(**MONEY)
    energy_kwh = serializers.DecimalField(**MONEY)
    gpu_hours = serializers.DecimalField(**MONEY)
    idle_gpu_hours = serializers.DecimalField(**MONEY)


class SpendRowSerializer(SpendFiguresSerializer):
    key = serializers.CharField(allow_null=True, read_only=True, help_text="Id, name or day of the group.")
    label = serializers.CharField(read_only=True)


class SpendSummarySerializer(serializers.Serializer):
    group_by = serializers.CharField(read_only=True)
    date_from = serializers.DateField(read_only=True)
    date_to = serializers.DateField(read_only=True)
    rows = SpendRowSerializer(many=True, read_only=True)
    totals = SpendFiguresSerializer(read_only=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["from"], data["to"] = data.pop("date_from"), data.pop("date_to")
        return data


class EgressRouteSerializer(serializers.Serializer):
    source = serializers.CharField(read_only=True)
    destination = serializers.CharField(read_only=True)
    bytes = serializers.IntegerField(read_only=True)
    usd = serializers.DecimalField(**MONEY)
    records = serializers.IntegerField(read_only=True)


class EgressSummarySerializer(serializers.Serializer):
    date_from = serializers.DateField(read_only=True)
    date_to = serializers.DateField(read_only=True)
    routes = EgressRouteSerializer(many=True, read_only=True)
    total_usd = serializers.DecimalField(**MONEY)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["from"], data["to"] = data.pop("date_from"), data.pop("date_to")
        return data


class ReconciliationRowSerializer(serializers.Serializer):
    day = serializers.DateField(read_only=True)
    estimated_usd = serializers.DecimalField(**MONEY)
    billed_usd = serializers.DecimalField(**MONEY, allow_null=True)
    difference_usd = serializers.DecimalField(**MONEY, allow_null=True)
    difference_pct = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True, allow_null=True)


# --- CSV ---------------------------------------------------------------------------------------------------
class SpendCSVRenderer(BaseRenderer):
    """A summary as CSV: a header row, one row per group, and a TOTAL row. Keys and labels that start like a
    spreadsheet formula are neutralised (core.csv); the figures are written as numbers, negative ones too."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"
    COLUMNS = ("key", "label", *selectors.SUMMED_FIELDS)

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = SafeWriter(out)
        writer.writerow(self.COLUMNS)
        for row in data.get("rows", []):
            writer.writerow([row.get("key"), row.get("label"), *self._figures(row)])  # None: an empty cell
        totals = data.get("totals")
        if totals:
            writer.writerow(["", "TOTAL", *self._figures(totals)])
        return out.getvalue().encode(self.charset)

    @staticmethod
    def _figures(row: dict) -> list[Decimal]:
        """The summed figures of a serialized row (decimal strings) as numbers, which csv_safe leaves as they are."""
        return [Decimal(row[c]) for c in selectors.SUMMED_FIELDS]


class SpendSummaryView(APIView):
    """Spend of a period grouped by one dimension, with totals; ``?format=csv`` (or summary.csv) for CSV."""

    queryset = LedgerDay.objects.none()  # reads need billing.view_ledgerday
    renderer_classes = [JSONRenderer, SpendCSVRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:  # errors stay JSON even when CSV was asked for
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=selectors.SPEND_DIMENSIONS, description="Dimension."),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: text/csv."),
            *PERIOD_PARAMETERS,
        ],
        responses={200: SpendSummarySerializer},
    )
    def get(self, request, format=None):
        params = SummaryParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        teams = _scoped_teams(request, p.get("team"))
        period = {"start": p["start"], "end": p["end"], "teams": teams}
        summary = {
            "group_by": p["group_by"],
            "date_from": p["start"],
            "date_to": p["last"],
            "rows": selectors.spend_by(dimension=p["group_by"], **period),
            "totals": selectors.spend_totals(**period).as_dict(),
        }
        response = Response(SpendSummarySerializer(summary).data)
        if getattr(request.accepted_renderer, "format", "") == "csv":
            name = f"spend-{p['group_by']}-{p['start']}-{p['last']}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class EgressSummaryView(APIView):
    """Egress of a period by route (from → to), with the total."""

    queryset = EgressRecord.objects.none()

    @extend_schema(parameters=PERIOD_PARAMETERS, responses={200: EgressSummarySerializer})
    def get(self, request):
        params = PeriodSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        period = {"start": p["start"], "end": p["end"], "teams": _scoped_teams(request, p.get("team"))}
        summary = {
            "date_from": p["start"],
            "date_to": p["last"],
            "routes": selectors.egress_by_route(**period),
            "total_usd": selectors.egress_total_usd(**period),
        }
        return Response(EgressSummarySerializer(summary).data)


class ReconciliationParamsSerializer(PeriodSerializer):
    provider = IdField(max_value=MAX_PK)

    def validate_provider(self, value):
        provider = Provider.objects.filter(pk=value).first()
        if provider is None:
            raise serializers.ValidationError("No such provider.")
        return provider


class ReconciliationView(APIView):
    """Estimated (ledger) against billed (AWS Cost Explorer) spend per day for one cloud account.

    Whole accounts hold every team's spend, so callers limited to some teams are refused.
    """

    queryset = LedgerDay.objects.none()

    @extend_schema(
        parameters=[
            OpenApiParameter("provider", OpenApiTypes.INT, required=True, description="Provider id."),
            *PERIOD_PARAMETERS[:2],
        ],
        responses={200: ReconciliationRowSerializer(many=True)},
    )
    def get(self, request):
        from billing.ledger import reconciliation_list

        if spend_team_scope(request.user) is not None:
            raise exceptions.PermissionDenied("Reconciliation covers whole accounts; you see your teams only.")
        params = ReconciliationParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        rows = reconciliation_list(provider=p["provider"], start=p["start"], end=p["end"])
        return Response(ReconciliationRowSerializer(rows, many=True).data)


# --- model endpoints ---------------------------------------------------------------------------------------
class PeriodFilterSet(FleetdeckFilterSet):
    """``from``/``to`` (UTC days, inclusive) on the model's time field, named by ``time_field``."""

    time_field = "occurred_at"

    def filter_from(self, queryset, name, value):
        return queryset.filter(**{f"{self.time_field}__gte": selectors._day_bounds(value, value)[0]})

    def filter_to(self, queryset, name, value):
        if value >= LATEST_DAY:
            return queryset
        return queryset.filter(**{f"{self.time_field}__lt": selectors._day_bounds(value + timedelta(days=1), value)[0]})

    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = filters.DateFilter(method="filter_from", label="From (UTC day)")
    locals()["to"] = filters.DateFilter(method="filter_to", label="To (UTC day, inclusive)")


class EgressRecordFilterSet(PeriodFilterSet):
    cause = filters.MultipleChoiceFilter(choices=EgressCause.choices)
    ordering = StableOrderingFilter(fields=("occurred_at", "usd", "bytes"))

    class Meta:
        model = EgressRecord
        fields = ("team", "project", "source", "destination", "planned")


class LedgerEntryFilterSet(PeriodFilterSet):
    time_field = "hour"
    ordering = StableOrderingFilter(fields=("hour", "compute_usd", "idle_usd", "node"))

    class Meta:
        model = LedgerEntry
        fields = ("node", "team", "project", "site", "provider", "lifecycle")


class BudgetFilterSet(FleetdeckFilterSet):
    ordering = StableOrderingFilter(fields=("monthly_usd", "created"))

    class Meta:
        model = Budget
        fields = ("team", "project")


class BudgetAlertFilterSet(FleetdeckFilterSet):
    kind = filters.MultipleChoiceFilter(choices=BudgetAlertKind.choices)
    ordering = StableOrderingFilter(fields=("month", "created", "sent_at"))

    class Meta:
        model = BudgetAlert
        fields = ("budget", "month")


class EgressRecordSerializer(ValidatedModelSerializer):
    source_provider_kind = ProviderKindField()

    class Meta:
        model = EgressRecord
        fields = (
            "id",
            "occurred_at",
            "source",
            "destination",
            "source_provider_kind",
            "location_class",
            "bytes",
            "usd",
            "cause",
            "planned",
            "team",
            "project",
            "placement",
            "dataset",
            "external_key",
        )
        read_only_fields = ("cause", "planned", "placement", "dataset", "external_key")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        team = attrs.get("team", getattr(self.instance, "team", None))
        project = attrs.get("project", getattr(self.instance, "project", None))
        if team and project and project.team_id != team.pk:
            raise serializers.ValidationError({"project": "This project belongs to another team."})
        scope = self.context.get("scope")
        if scope is not None and (team is None or team.pk not in scope):
            raise serializers.ValidationError({"team": "Choose one of your own teams."})
        return attrs


class BudgetSerializer(ValidatedModelSerializer):
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
            statuses.update(budget_statuses([budget]))
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

    def validate_thresholds_pct(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each threshold once.")
        return sorted(value)


def budget_statuses(budgets: list[Budget]) -> dict[int, selectors.BudgetStatus]:
    """This month's status of each budget, in two queries whatever their number."""
    start, end, today = selectors.month_period(month=selectors.utc_today())
    spend = selectors.budget_spend(budgets=budgets, start=start, end=end)
    return {b.pk: selectors.budget_status(budget=b, spend_usd=spend[b.pk], month=start, today=today) for b in budgets}


class BudgetAlertSerializer(serializers.ModelSerializer):
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


class LedgerEntrySerializer(serializers.ModelSerializer):
    provider_kind = ProviderKindField(read_only=True)

    class Meta:
        model = LedgerEntry
        fields = (
            "id",
            "node",
            "hour",
            "provider",
            "provider_kind",
            "site",
            "team",
            "project",
            "gpu_model",
            "lifecycle",
            "gpu_count",
            "active_s",
            "rate_usd_per_h",
            "compute_usd",
            "energy_kwh",
            "energy_usd",
            "gpu_hours",
            "idle_gpu_hours",
            "idle_usd",
            "priced",
        )
        read_only_fields = fields


class TeamScopedMixin:
    """Limits the queryset to the caller's team scope (``team_field`` names the team of a row)."""

    team_field = "team_id"

    def scope(self) -> list[int] | None:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return None
        if not hasattr(self, "_scope"):
            self._scope = spend_team_scope(self.request.user)
        return self._scope

    def get_queryset(self):
        queryset = super().get_queryset()
        scope = self.scope()
        if scope is None:
            return queryset
        return queryset.filter(**{f"{self.team_field}__in": scope})

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "scope": self.scope()}


class EgressRecordViewSet(TeamScopedMixin, FleetdeckModelViewSet):
    """Egress records; records entered here are manual (placements and Cost Explorer write their own)."""

    queryset = EgressRecord.objects.all()
    serializer_class = EgressRecordSerializer
    filterset_class = EgressRecordFilterSet

    def perform_create(self, serializer):
        serializer.save(cause=EgressCause.MANUAL)


class BudgetViewSet(TeamScopedMixin, FleetdeckModelViewSet):
    """Monthly budgets of teams and projects, with this month's spend, forecast, % and state (read-only)."""

    queryset = Budget.objects.select_related("team", "project")
    serializer_class = BudgetSerializer
    filterset_class = BudgetFilterSet

    def get_queryset(self):
        scope = self.scope()
        queryset = self.queryset.all()
        if scope is not None:
            queryset = queryset.filter(Q(team_id__in=scope) | Q(project__team_id__in=scope))
        return queryset

    def get_serializer(self, *args, **kwargs):
        if args and isinstance(args[0], list):  # a list page: every status in two queries
            kwargs.setdefault("context", self.get_serializer_context())["statuses"] = budget_statuses(args[0])
        return super().get_serializer(*args, **kwargs)


class BudgetAlertViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Alerts sent (or due) for budgets: one per budget, month, kind and threshold."""

    queryset = BudgetAlert.objects.all()
    serializer_class = BudgetAlertSerializer
    filterset_class = BudgetAlertFilterSet

    def get_queryset(self):
        scope = self.scope()
        queryset = self.queryset.all()
        if scope is not None:
            queryset = queryset.filter(Q(budget__team_id__in=scope) | Q(budget__project__team_id__in=scope))
        return queryset


class LedgerEntryViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """The hourly cost ledger, one row per node and hour, newest first."""

    queryset = LedgerEntry.objects.all()
    serializer_class = LedgerEntrySerializer
    filterset_class = LedgerEntryFilterSet


def register(router) -> None:
    """Add the spend viewsets to ``router``."""
    router.register("egress-records", EgressRecordViewSet)
    router.register("budgets", BudgetViewSet)
    router.register("budget-alerts", BudgetAlertViewSet)
    router.register("ledger", LedgerEntryViewSet, basename="ledgerentry")


urlpatterns = [
    path("spend/summary/", SpendSummaryView.as_view(), name="spend-summary"),
    path("spend/summary.csv", SpendSummaryView.as_view(), {"format": "csv"}, name="spend-summary-csv"),
    path("spend/egress/", EgressSummaryView.as_view(), name="spend-egress"),
    path("spend/reconciliation/", ReconciliationView.as_view(), name="spend-reconciliation"),
]
