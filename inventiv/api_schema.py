"""The OpenAPI schema's error answers: every operation documents the refusals any request may get, in the
one error shape (README, "API conventions"), so that a client (and the schemathesis run) knows each status.

A drf-spectacular postprocessing hook, run after the generator: it adds only what an operation does not
document already (an operation's own 400 or 409, with its description, stays as it is).
"""

from drf_spectacular.openapi import AutoSchema


class OneObjectSchema(AutoSchema):
    """The schema of a viewset whose `list` answers one object (counts, a launch plan), not a page of them."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "description": "The one error shape of the REST API (README, \"API conventions\")",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "From the README's vocabulary"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "Each field at fault and why (nested as `parent.child`)"},
                "instance": {"type": "string", "format": "uuid",
                             "description": "The instance the error is about, where one is stored"},
            },
            "required": ["code", "message"],
        },
    },
    "required": ["error"],
}
# Any operation may get these: bad parameters, no or a bad login, a viewer that writes, an `Accept` the API
# cannot give, a throttle, the database away.
ANY_OPERATION = {
    "400": "invalid / parse_error: a field, parameter or body is refused (`fields` says which)",
    "401": "not_authenticated / authentication_failed",
    "403": "not_authenticated / authentication_failed / permission_denied",
    "406": "not_acceptable",
    "429": "throttled (see Retry-After)",
    "503": "unavailable: the database is unreachable (see Retry-After)",
}
WITH_PATH_PARAMETERS = {"404": "not_found"}
WITH_BODY = {"415": "unsupported_media_type"}
WRITES = {"409": "in_use / invalid_status: other rows depend on it, or its status does not allow this"}
WRITE_METHODS = ("post", "put", "patch", "delete")


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def add_error_responses(result, generator, request, public):
    """Document the error answers of every operation under /api/ (the worker protocol's paths excepted)."""
    # The error serializer (inventiv.api_errors) names the same shape where a view documents it.
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", ERROR_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/") or path.startswith("/api/worker/"):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            extra = dict(ANY_OPERATION)
            if "{" in path:
                extra.update(WITH_PATH_PARAMETERS)
            if "requestBody" in operation:
                extra.update(WITH_BODY)
            if method in WRITE_METHODS:
                extra.update(WRITES)
            for status, description in extra.items():
                operation["responses"].setdefault(status, _error(description))
    return result
