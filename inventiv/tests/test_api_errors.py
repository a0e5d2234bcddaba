"""Every refusal of the REST API answers the one error shape (README, "API conventions")."""

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.test import APIClient

from inventiv.api_errors import ApiError, exception_handler, flatten_reasons


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]) and body["error"]["message"], body
    assert body["error"]["code"] in ApiError.ALL or body["error"]["code"].isupper(), body
    return body["error"]


def test_nested_reasons_are_flattened_to_one_string_per_dotted_field():
    detail = {
        "name": ["Too long.", "Reserved"],
        "choices": [{}, {"zone": ["No zone has code mars-1."]}, {"non_field_errors": ["Already choice #1"]}],
        "limits": {"rpm": ["Must be positive."]},
        "non_field_errors": ["Pick one."],
    }
    assert flatten_reasons(detail) == {
        "name": "Too long. Reserved.",
        "choices.1.zone": "No zone has code mars-1.",
        "choices.2": "Already choice #1.",
        "limits.rpm": "Must be positive.",
        "non_field_errors": "Pick one.",
    }


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (exceptions.ValidationError({"name": ["Required."]}), 400, ApiError.INVALID),
        (exceptions.ValidationError(["Several regions have that code."]), 400, ApiError.INVALID),
        (exceptions.ParseError(), 400, ApiError.PARSE_ERROR),
        (exceptions.NotAuthenticated(), 401, ApiError.NOT_AUTHENTICATED),
        (exceptions.AuthenticationFailed(), 401, ApiError.AUTHENTICATION_FAILED),
        (exceptions.PermissionDenied(), 403, ApiError.PERMISSION_DENIED),
        (exceptions.NotFound(), 404, ApiError.NOT_FOUND),
        (exceptions.MethodNotAllowed("PUT"), 405, ApiError.METHOD_NOT_ALLOWED),
        (exceptions.NotAcceptable(), 406, ApiError.NOT_ACCEPTABLE),
        (exceptions.UnsupportedMediaType("text/plain"), 415, ApiError.UNSUPPORTED_MEDIA_TYPE),
        (exceptions.Throttled(wait=3), 429, ApiError.THROTTLED),
        (DjangoValidationError({"value": ["Below the minimum."]}), 400, ApiError.INVALID),
        (DjangoValidationError("Not a valid value."), 400, ApiError.INVALID),
    ],
)
def test_each_kind_of_refusal_has_its_documented_code(rf, exc, status, code):
    response = exception_handler(exc, {"request": rf.get("/api/"), "view": None})

    assert response.status_code == status
    assert set(response.data) == {"error"}
    error = response.data["error"]
    assert error["code"] == code and error["message"]
    assert all(isinstance(reason, str) for reason in error.get("fields", {}).values())


def test_a_throttled_answer_keeps_its_retry_after(rf):
    response = exception_handler(exceptions.Throttled(wait=3), {"request": rf.get("/api/"), "view": None})
    assert response["Retry-After"] == "3"


def test_a_field_error_names_the_field_and_the_reason(api, seed):
    response = api.patch("/api/settings/sweep_interval_s/", {"value": "soon"}, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == ApiError.INVALID and set(error["fields"]) == {"value"}


@pytest.mark.django_db
def test_an_anonymous_client_gets_not_authenticated():
    response = APIClient().get("/api/instances/")
    assert response.status_code in (401, 403) and error_of(response)["code"] == ApiError.NOT_AUTHENTICATED


@pytest.mark.django_db
def test_an_unknown_token_is_authentication_failed():
    response = APIClient().get("/api/instances/", HTTP_AUTHORIZATION="Token nope")
    # 403 rather than 401: the session authenticator comes first and names no WWW-Authenticate scheme.
    assert response.status_code in (401, 403) and error_of(response)["code"] == ApiError.AUTHENTICATION_FAILED


def test_a_viewer_that_writes_gets_permission_denied(viewer_api, seed):
    response = viewer_api.delete("/api/providers/mock/")
    assert response.status_code == 403 and error_of(response)["code"] == ApiError.PERMISSION_DENIED


def test_a_body_that_is_not_json_is_a_parse_error(api, seed):
    response = api.post("/api/pools/", "{not json", content_type="application/json")
    assert response.status_code == 400 and error_of(response)["code"] == ApiError.PARSE_ERROR


def test_a_body_of_another_media_type_is_refused(api, seed):
    response = api.post("/api/pools/", "name=x", content_type="text/plain")
    assert response.status_code == 415 and error_of(response)["code"] == ApiError.UNSUPPORTED_MEDIA_TYPE


def test_an_unsupported_method_is_method_not_allowed(api, seed):
    response = api.put("/api/pools/", {}, format="json")
    assert response.status_code == 405 and error_of(response)["code"] == ApiError.METHOD_NOT_ALLOWED


def test_deleting_a_row_others_depend_on_is_in_use(api, seed):
    response = api.delete("/api/providers/scaleway/")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == ApiError.IN_USE and "regions (fr-par" in error["message"]


def test_a_path_no_endpoint_matches_is_a_404_in_the_error_shape_under_api_only(api, seed):
    response = api.get("/api/action-logs/not-a-number/")
    assert response.status_code == 404 and error_of(response)["code"] == ApiError.NOT_FOUND
    assert api.get("/no-such-page/").status_code == 404
    assert api.get("/api/instances").status_code == 301  # the slash is still added
