"""Filters shared by every app's FilterSets."""

import django_filters as filters


class StableOrderingFilter(filters.OrderingFilter):
    """django-filter's OrderingFilter with the primary key as last key, so pages never overlap on ties."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if value:
            qs = qs.order_by(*qs.query.order_by, "pk")
        return qs
