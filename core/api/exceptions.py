"""API exception handler: model validation and integrity errors become 4xx with field messages."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """DRF's handler, plus: Django ValidationError → 400, IntegrityError → 409, ProtectedError → 409."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, ProtectedError):
        blocking = sorted({str(obj) for obj in exc.protected_objects})[:10]
        return Response(
            {"detail": "Cannot delete: other objects still refer to it.", "protected": blocking},
            status=status.HTTP_409_CONFLICT,
        )
    elif isinstance(exc, IntegrityError):
        # Validators catch what they can; a race between two writers still ends here, not in a 500.
        return Response(
            {"detail": "The change conflicts with existing data (a unique or referential constraint)."},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)
