"""Commitments API: reserved instances, savings plans and committed-use discounts of the cloud accounts, and what
each did (``usage``). Operators and admins write, viewers read; a viewer limited to teams sees only the
commitments of those teams (fleet.scoping: a commitment is the team's that pays its unused part).

The rules of a commitment are ``Commitment.clean`` (run by the serializer, then again by
``billing.commitments.commitment_save`` under a lock on the account): see docs/billing.md#commitments.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from billing import selectors
from billing.api.common import MONEY, ProviderKindField
from billing.choices import CommitmentKind
from billing.commitments import USAGE_PERIODS, commitment_save, commitment_usage
from billing.filtersets import CommitmentFilterSet
from billing.models import Commitment
from core.api.serializers import ValidatedModelSerializer
from core.api.views import FleetdeckModelViewSet
from fleet.scoping import TeamScopedViewMixin


@extend_schema_field({"type": "string", "description": "One of: " + ", ".join(CommitmentKind.values) + "."})
class CommitmentKindField(serializers.ChoiceField):
    """A commitment kind (reserved-instance, savings-plan, committed-use)."""

    def __init__(self, **kwargs):
        super().__init__(choices=CommitmentKind.choices, **kwargs)


TERMS = {"1y": 1, "3y": 3}


def term_end(start: date, years: int) -> date:
    """The first day after a term of ``years`` from ``start`` (a 29 February start ends on 1 March)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return date(start.year + years, 3, 1)


@extend_schema_field({"type": "string", "nullable": True, "description": "1y or 3y (null when read: another length)."})
class TermField(serializers.ChoiceField):
    """``1y`` or ``3y``: sets ``end`` from ``start``; reads back as the term the dates make (null for others)."""

    def __init__(self, **kwargs):
        super().__init__(choices=list(TERMS), source="*", **kwargs)

    def to_representation(self, value):
        return next((term for term, years in TERMS.items() if term_end(value.start, years) == value.end), None)

    def to_internal_value(self, data):
        return {"term": super().to_internal_value(data)}


class CommitmentSerializer(ValidatedModelSerializer):
    """One commitment; count basis: instance type, count, rate per instance; spend basis: $/h and discount %."""

    kind = CommitmentKindField()
    term = TermField(
        required=False,
        help_text="1y or 3y: the end is then the start plus the term (give either, or both agreeing). Read: the"
        " term the start and end make, null for another length.",
    )
    provider_name = serializers.CharField(source="provider.name", read_only=True)
    provider_kind = ProviderKindField(source="provider.kind", read_only=True)

    class Meta:
        model = Commitment
        fields = (
            "id",
            "provider",
            "provider_name",
            "provider_kind",
            "name",
            "kind",
            "basis",
            "region",
            "instance_type",
            "count",
            "rate_usd_per_h",
            "hourly_commitment_usd",
            "discount_pct",
            "start",
            "end",
            "term",
            "team",
            "note",
            "created",
        )
        read_only_fields = ("created",)
        extra_kwargs = {"end": {"required": False}}  # or ``term``

    def validate(self, attrs):
        """``term`` sets the end; a caller limited to some teams may only book commitments to one of them."""
        term = attrs.pop("term", None)
        start = attrs.get("start", getattr(self.instance, "start", None))
        if term is not None and start is not None:
            end = term_end(start, TERMS[term])
            if "end" in attrs and attrs["end"] != end:
                raise serializers.ValidationError(
                    {"term": f"A {term} term from {start} ends on {end}, not {attrs['end']}."}
                )
            attrs["end"] = end
        if self.instance is None and "end" not in attrs:
            raise serializers.ValidationError({"end": "Give the end (first day no longer covered) or a term."})
        attrs = super().validate(attrs)
        scope = self.context.get("scope")
        team = attrs.get("team", getattr(self.instance, "team", None))
        if scope is not None and (team is None or team.pk not in scope):
            raise serializers.ValidationError({"team": "Choose one of your own teams."})
        return attrs

    def _saved(self, commitment: Commitment) -> Commitment:
        try:
            return commitment_save(commitment=commitment)
        except DjangoValidationError as exc:  # lost a race with an overlapping commitment saved meanwhile
            raise serializers.ValidationError(exc.message_dict) from exc

    def create(self, validated_data):
        return self._saved(Commitment(**validated_data))

    def update(self, instance, validated_data):
        for key, value in validated_data.items():
            setattr(instance, key, value)
        return self._saved(instance)


class UsageParamsSerializer(serializers.Serializer):
    """``from``/``to`` (UTC days, inclusive; default: the commitment's term up to today) and ``by``."""

    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    by = serializers.ChoiceField(choices=USAGE_PERIODS, default="month")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"], fields["to"] = fields.pop("date_from"), fields.pop("date_to")
        return fields

    def validate(self, attrs):
        commitment = self.context["commitment"]
        start = attrs.get("from") or commitment.start
        last = attrs.get("to") or max(start, min(commitment.end - timedelta(days=1), selectors.utc_today()))
        errors = selectors.period_errors(start=start, last=last)
        if errors:
            raise serializers.ValidationError(errors)
        return {"start": start, "end": last + timedelta(days=1), "by": attrs["by"]}


class UsageFiguresSerializer(serializers.Serializer):
    hours = serializers.IntegerField(read_only=True, help_text="Hours of the ledger computed.")
    committed_usd = serializers.DecimalField(**MONEY)
    used_usd = serializers.DecimalField(**MONEY, help_text="Paid by covered node-hours.")
    unused_usd = serializers.DecimalField(**MONEY, help_text="Committed − used.")
    eligible_list_usd = serializers.DecimalField(**MONEY, help_text="On-demand value of the usage left to it.")
    covered_list_usd = serializers.DecimalField(**MONEY, help_text="On-demand value of the usage it covered.")
    uncovered_list_usd = serializers.DecimalField(**MONEY, help_text="Eligible − covered.")
    savings_usd = serializers.DecimalField(**MONEY, help_text="Covered list − used.")
    net_savings_usd = serializers.DecimalField(**MONEY, help_text="Covered list − committed (unused counted).")


class UsagePeriodSerializer(UsageFiguresSerializer):
    period = serializers.DateField(read_only=True, help_text="The first day of the month, or the day.")


class UsageSerializer(serializers.Serializer):
    commitment = serializers.IntegerField(read_only=True)
    by = serializers.CharField(read_only=True)
    start = serializers.DateField(read_only=True)
    end = serializers.DateField(read_only=True, help_text="Exclusive.")
    periods = UsagePeriodSerializer(many=True, read_only=True)
    total = UsageFiguresSerializer(read_only=True)


class CommitmentViewSet(TeamScopedViewMixin, FleetdeckModelViewSet):
    """Commitments of the cloud accounts; ``usage`` says what one did per month or day."""

    queryset = Commitment.objects.select_related("provider", "team")
    serializer_class = CommitmentSerializer
    filterset_class = CommitmentFilterSet

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="First UTC day (default: the start)."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last UTC day, inclusive (default: today)."),
            OpenApiParameter("by", str, enum=list(USAGE_PERIODS), description="Per month (default) or day."),
        ],
        responses={200: UsageSerializer},
    )
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        """Committed, used, unused, covered and eligible list $, uncovered and savings per month or day."""
        commitment = self.get_object()
        params = UsageParamsSerializer(data=request.query_params, context={"commitment": commitment})
        params.is_valid(raise_exception=True)
        usage = commitment_usage(commitment=commitment, **params.validated_data)
        return Response(UsageSerializer({"commitment": commitment.pk, **usage}).data)


def register(router) -> None:
    """Add the commitment viewset to ``router`` (basename commitment)."""
    router.register("commitments", CommitmentViewSet, basename="commitment")


urlpatterns: list = []
