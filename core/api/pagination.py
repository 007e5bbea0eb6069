"""Pagination that refuses an unordered queryset, whose pages would overlap or skip rows."""

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from rest_framework.pagination import PageNumberPagination


class OrderedPageNumberPagination(PageNumberPagination):
    """Page-number pagination, ``?page_size=`` up to 1,000; an unordered queryset is a programming error."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset, request, view=None):
        if isinstance(queryset, QuerySet) and not queryset.ordered:
            raise ImproperlyConfigured(
                f"{type(view).__name__} paginates an unordered queryset; give the model Meta.ordering "
                "or order the view's queryset."
            )
        return super().paginate_queryset(queryset, request, view)
