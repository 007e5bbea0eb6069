"""What the billing API's modules share: the period query parameters (``from``/``to``/``team``) checked like the
spend page's, the caller's team scope narrowed by ``?team=``, and choice fields documented as strings."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import exceptions, serializers

from billing import selectors
from billing.choices import BudgetAlertKind
from core.api.fields import IdField
from fleet.choices import ProviderKind
from fleet.scoping import team_scope, teams_in_scope

MAX_PK = 2**31 - 1
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
    """The period parameters and ``group_by`` (a spend dimension; default provider)."""

    group_by = serializers.ChoiceField(choices=selectors.SPEND_DIMENSIONS, default="provider")


PERIOD_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First UTC day (default: the 1st of this month)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last UTC day, inclusive (default: today)."),
    OpenApiParameter("team", OpenApiTypes.INT, many=True, description="Team ids (repeat for several)."),
]


def scoped_teams(request, requested: list[int] | None) -> list[int] | None:
    """The caller's team scope (fleet.scoping) narrowed by ``?team=``; a team outside a limited scope is refused."""
    scope = team_scope(request.user)
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
