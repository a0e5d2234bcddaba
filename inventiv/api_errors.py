"""One place that turns domain errors into clear API answers."""

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, (ProtectedError, RestrictedError)):
        blockers = sorted({str(obj) for obj in list(exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects)[:10]})
        return Response(
            {"detail": f"Cannot delete: still referenced by {', '.join(blockers)}. Delete or move those first."},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ObjectDoesNotExist):
        # The row went away between the view's lookup and the service's lock (deleted meanwhile).
        return Response({"detail": "Not found: it was deleted meanwhile."}, status=status.HTTP_404_NOT_FOUND)
    return drf_exception_handler(exc, context)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    """The one error shape of the REST API (README, "API conventions"):
    `{"error": {"code": ..., "message": ..., "fields": {name: reason}}}`, `fields` only when a field is at fault."""
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}
