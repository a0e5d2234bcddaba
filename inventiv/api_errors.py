"""The one error shape of the REST API (README, "API conventions"), and the handler that gives it to every error.

Every refusal answers `{"error": {"code": ..., "message": ..., "fields": {name: reason}}}`: `code` comes from
the documented vocabulary (ApiError below, or an instance's ErrorCode for a rejected request), `message` is a
sentence for a person, and `fields` (only when a field is at fault) maps each field to one reason, a string:
nested fields are named `parent.child` (`choices.0.zone`), several reasons for one field are joined.
"""

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"
# Reasons DRF files under these keys belong to no one field: they become the message.
NON_FIELD_KEYS = ("non_field_errors", "detail")
# The most blocking rows of one kind a 409 names (a provider may have hundreds of zones).
MAX_BLOCKERS = 10


class ApiError:
    """The codes of the REST API's own errors (the README's "API conventions" table lists them)."""

    INVALID = "invalid"  # 400: a field or parameter is refused; `fields` says which and why
    PARSE_ERROR = "parse_error"  # 400: the body is not valid JSON (or form data)
    NOT_AUTHENTICATED = "not_authenticated"  # 401/403: no session and no token
    AUTHENTICATION_FAILED = "authentication_failed"  # 401: the token is unknown, expired or malformed
    PERMISSION_DENIED = "permission_denied"  # 403: signed in, but only staff may do this
    NOT_FOUND = "not_found"  # 404: no such object (or it was deleted meanwhile)
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405: see the `Allow` header
    NOT_ACCEPTABLE = "not_acceptable"  # 406: the `Accept` header asks for a format the API cannot give
    IN_USE = "in_use"  # 409: other rows (or live instances) still depend on it
    INVALID_STATUS = "invalid_status"  # 409: the instance's status does not allow this action
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415: send JSON
    THROTTLED = "throttled"  # 429: see `Retry-After`
    UNAVAILABLE = "unavailable"  # 503: the database is away; see `Retry-After`

    ALL = (INVALID, PARSE_ERROR, NOT_AUTHENTICATED, AUTHENTICATION_FAILED, PERMISSION_DENIED, NOT_FOUND,
           METHOD_NOT_ALLOWED, NOT_ACCEPTABLE, IN_USE, INVALID_STATUS, UNSUPPORTED_MEDIA_TYPE, THROTTLED,
           UNAVAILABLE)


# Most specific first: AuthenticationFailed before any parent it may share.
CODES = (
    (exceptions.ValidationError, ApiError.INVALID),
    (exceptions.ParseError, ApiError.PARSE_ERROR),
    (exceptions.NotAuthenticated, ApiError.NOT_AUTHENTICATED),
    (exceptions.AuthenticationFailed, ApiError.AUTHENTICATION_FAILED),
    (exceptions.PermissionDenied, ApiError.PERMISSION_DENIED),
    (exceptions.NotFound, ApiError.NOT_FOUND),
    (exceptions.MethodNotAllowed, ApiError.METHOD_NOT_ALLOWED),
    (exceptions.NotAcceptable, ApiError.NOT_ACCEPTABLE),
    (exceptions.UnsupportedMediaType, ApiError.UNSUPPORTED_MEDIA_TYPE),
    (exceptions.Throttled, ApiError.THROTTLED),
)
# Any other APIException (a library's) takes the code of its status.
CODES_BY_STATUS = {
    400: ApiError.INVALID, 401: ApiError.NOT_AUTHENTICATED, 403: ApiError.PERMISSION_DENIED,
    404: ApiError.NOT_FOUND, 405: ApiError.METHOD_NOT_ALLOWED, 406: ApiError.NOT_ACCEPTABLE,
    409: ApiError.IN_USE, 415: ApiError.UNSUPPORTED_MEDIA_TYPE, 429: ApiError.THROTTLED,
    503: ApiError.UNAVAILABLE,
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="From the README's vocabulary: an API code (invalid, not_found...) or, "
                                 "for a rejected instance request, the instance's error code (INVALID_ZONE...)")
    message = serializers.CharField(help_text="What went wrong, for a person")
    fields = serializers.DictField(child=serializers.CharField(), required=False,
                                   help_text="Each field at fault and why (nested fields as `parent.child`)")
    instance = serializers.UUIDField(required=False, help_text="The instance the error is about, where one is stored")


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the REST API."""

    error = ErrorDetailSerializer()


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    """The one error shape of the REST API (README, "API conventions"):
    `{"error": {"code": ..., "message": ..., "fields": {name: reason}}}`, `fields` only when a field is at fault."""
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(code: str, message: str, *, status_code: int, fields: dict | None = None) -> Response:
    return Response(error_body(code, message, fields), status=status_code)


def _sentence(text: str) -> str:
    text = str(text).strip()
    return text if not text or text[-1] in ".!?:" else text + "."


def flatten_reasons(detail, prefix: str = "") -> dict[str, str]:
    """`{name: reason}` from DRF's nested error detail: nested names joined with dots, several reasons joined."""
    if isinstance(detail, dict):
        fields: dict[str, str] = {}
        for key, value in detail.items():
            # A nested object's own reasons (`non_field_errors`) belong to the object: `choices.0`.
            name = prefix if prefix and key in NON_FIELD_KEYS else f"{prefix}.{key}" if prefix else str(key)
            fields.update(flatten_reasons(value, name))
        return fields
    if isinstance(detail, list | tuple):
        if any(isinstance(item, dict | list | tuple) for item in detail):
            fields = {}
            for index, item in enumerate(detail):
                if item:  # a list of nested objects has an empty dict for each valid one
                    fields.update(flatten_reasons(item, f"{prefix}.{index}" if prefix else str(index)))
            return fields
        return {prefix: " ".join(_sentence(item) for item in detail)}
    return {prefix: _sentence(detail)}


def validation_body(detail) -> dict:
    """The error body of a refused input: field reasons in `fields`, reasons about no one field in the message."""
    if not isinstance(detail, dict):
        return error_body(ApiError.INVALID, " ".join(flatten_reasons(detail).values()) or "Invalid input.")
    general = [reason for key in NON_FIELD_KEYS if key in detail for reason in flatten_reasons(detail[key]).values()]
    fields = flatten_reasons({key: value for key, value in detail.items() if key not in NON_FIELD_KEYS})
    if general:
        message = " ".join(general)
    else:
        message = "Invalid input: " + "; ".join(f"{name}: {reason}" for name, reason in fields.items())
    return error_body(ApiError.INVALID, message, fields)


def blockers(objects) -> str:
    """The rows that block a delete, per kind, a few names each: "2 regions (fr-par, nl-ams)"."""
    by_kind: dict[str, set[str]] = {}
    for obj in objects:
        by_kind.setdefault(str(obj._meta.verbose_name_plural), set()).add(str(obj))
    return ", ".join(
        f"{len(names)} {kind} ({', '.join(sorted(names)[:MAX_BLOCKERS])}{', ...' if len(names) > MAX_BLOCKERS else ''})"
        for kind, names in sorted(by_kind.items())
    )


def _code(exc: exceptions.APIException, status_code: int) -> str:
    for kind, code in CODES:
        if isinstance(exc, kind):
            return code
    return CODES_BY_STATUS.get(status_code, ApiError.INVALID if status_code < 500 else ApiError.UNAVAILABLE)


def exception_handler(exc, context):
    """DRF's handler (status, `WWW-Authenticate`, `Retry-After`), each answer in the one error shape."""
    if isinstance(exc, ProtectedError | RestrictedError):
        objects = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        return error_response(
            ApiError.IN_USE, f"Cannot delete: still referenced by {blockers(objects)}. Delete or move those first.",
            status_code=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return Response(validation_body(detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ObjectDoesNotExist):
        # The row went away between the view's lookup and the service's lock (deleted meanwhile).
        return error_response(ApiError.NOT_FOUND, "Not found: it was deleted meanwhile.",
                              status_code=status.HTTP_404_NOT_FOUND)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = validation_body(exc.detail)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data.get("detail", "")
        message = " ".join(flatten_reasons(detail).values()) if isinstance(detail, dict | list) else _sentence(detail)
        response.data = error_body(_code(exc, response.status_code), message)
    return response


def not_found(request, exception=None):
    """Django's 404 (no URL matched): the error shape under /api/ (the worker protocol's paths included: its
    agent reads only the status), the 404 page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body(ApiError.NOT_FOUND, f"No endpoint at {request.path}."), status=404)
    return page_not_found(request, exception)
