"""Filters shared by every app's FilterSets."""

import django_filters as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field


class StableOrderingFilter(filters.OrderingFilter):
    """django-filter's OrderingFilter with the primary key as last key, so pages never overlap on ties."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if value:
            qs = qs.order_by(*qs.query.order_by, "pk")
        return qs


@extend_schema_field(OpenApiTypes.STR)
class ModelMultipleKeyFilter(filters.ModelMultipleChoiceFilter):
    """Several related objects by a readable key (``?team=research&team=data``), not by primary key.

    Give ``field_name="team__slug"`` and ``to_field_name="slug"``: django-filter compares that field.
    """
