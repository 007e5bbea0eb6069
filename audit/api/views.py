"""GET /api/v1/changes/: the audit trail, filtered like the Changes page, paginated like every list."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions
from rest_framework.generics import ListAPIView

from audit.api.serializers import ChangeSerializer
from audit.forms import ChangeFilterForm
from audit.selectors import audit_visible, change_refs, changes_for


class CanReadAuditTrail(permissions.BasePermission):
    """Operators and admins (and superusers) read the audit trail."""

    message = "The audit trail is for operators and admins."

    def has_permission(self, request, view) -> bool:
        return audit_visible(request.user)


FILTER_PARAMETERS = [
    OpenApiParameter("object_type", str, description="app_label.model, e.g. fleet.node, scheduler.job."),
    OpenApiParameter("object_id", int, description="The changed object's id."),
    OpenApiParameter("user", int, description="The id of the user who made the change."),
    OpenApiParameter("interface", str, enum=["page", "api", "admin", "task", "command"]),
    OpenApiParameter("event", str, enum=["insert", "update", "delete"]),
    OpenApiParameter("since", str, description="First UTC day included (YYYY-MM-DD)."),
    OpenApiParameter("until", str, description="Last UTC day included (YYYY-MM-DD)."),
]


class ChangeListView(ListAPIView):
    """Recorded changes of audited objects, newest first."""

    serializer_class = ChangeSerializer
    permission_classes = [permissions.IsAuthenticated, CanReadAuditTrail]
    filter_backends = []

    @extend_schema(parameters=FILTER_PARAMETERS)
    def list(self, request, *args, **kwargs):
        """A page of changes; a filter that is not understood is a 400 naming it."""
        form = ChangeFilterForm(request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError({name: list(errors) for name, errors in form.errors.items()})
        page = self.paginate_queryset(change_refs(form.filters()))
        return self.get_paginated_response(self.get_serializer(changes_for(page), many=True).data)
