"""Base viewset for every model in the API."""

from rest_framework import viewsets


class FleetdeckModelViewSet(viewsets.ModelViewSet):
    """CRUD with filtering, ordering and ordered pagination; subclasses set queryset, serializer, filterset.

    Ordering comes from each FilterSet's ``ordering`` filter, so the HTML list and the API accept the same keys.
    """
