"""Every endpoint of the REST API follows its conventions (README, "API conventions"): the one error shape
on a bad request and on a missing object, the one pagination on every list. The endpoints come from the
live OpenAPI schema, so a new one is checked by existing."""

import pytest

from autoscaling.tests.factories import make_pool
from inventiv.api_errors import ApiError
from inventiv.pagination import MAX_LIMIT

MISSING = {"uuid": "00000000-0000-0000-0000-000000000000", "integer": "999999", "string": "no-such-thing"}
PAGE_KEYS = {"count", "next", "previous", "results"}
# Answers a bad request may get, each in the error shape: refused (400), not there (404), not allowed (405).
REFUSALS = {400, 404, 405}


@pytest.fixture
def schema(api, seed):
    make_pool(name="echo")  # so that the pool lists have a row
    return api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def operations(schema, *methods):
    for path, items in schema["paths"].items():
        if not path.startswith("/api/") or path.startswith("/api/worker/"):
            continue
        for method, operation in items.items():
            if method in methods:
                yield path, method, operation


def resolve(schema, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def is_list(schema, operation) -> bool:
    content = operation["responses"].get("200", {}).get("content", {}).get("application/json")
    if content is None:
        return False
    body = resolve(schema, content["schema"])
    return body.get("type") == "array" or "results" in body.get("properties", {})


def missing_path(path: str, operation) -> str:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            kind = parameter["schema"].get("format") or parameter["schema"].get("type", "string")
            path = path.replace("{" + parameter["name"] + "}", MISSING.get(kind, MISSING["string"]))
    return path


def assert_error_shape(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, (response.request["PATH_INFO"], body)
    error = body["error"]
    assert set(error) <= {"code", "message", "fields", "instance"} and error["message"], body
    assert error["code"] in ApiError.ALL or error["code"].isupper(), body
    assert all(isinstance(reason, str) for reason in error.get("fields", {}).values()), body
    return error


def test_every_list_answers_the_one_pagination_and_clamps_its_limit(api, schema):
    lists = [(path, operation) for path, method, operation in operations(schema, "get") if is_list(schema, operation)]
    assert len(lists) >= 15
    for path, operation in lists:
        if "{" in path:
            continue  # related lists: checked below on a real row
        response = api.get(path, {"limit": MAX_LIMIT * 10})
        assert response.status_code == 200, (path, response.content)
        assert set(response.json()) - {"stats"} == PAGE_KEYS, path
        assert len(response.json()["results"]) <= MAX_LIMIT
        refused = api.get(path, {"limit": "many"})
        assert refused.status_code == 400 and "limit" in assert_error_shape(refused)["fields"], path
    for path in ("/api/zones/fr-par-2/instance-types/", "/api/instance-types/L4-1-24G/compatible-models/",
                 "/api/models/mock-echo/compatible-instance-types/", "/api/pools/echo/samples/"):
        response = api.get(path)
        assert response.status_code == 200 and set(response.json()) == PAGE_KEYS, path


def test_every_operation_on_a_missing_object_is_a_404_in_the_error_shape(api, schema):
    checked = 0
    for path, method, operation in operations(schema, "get", "post", "put", "patch", "delete"):
        if "{" not in path:
            continue
        response = getattr(api, method)(missing_path(path, operation), {}, format="json")
        assert response.status_code == 404, (method, path, response.status_code, response.content)
        assert assert_error_shape(response)["code"] == ApiError.NOT_FOUND
        checked += 1
    assert checked >= 20


def test_every_write_refuses_a_body_that_is_not_an_object_in_the_error_shape(api, schema):
    checked = 0
    for path, method, operation in operations(schema, "post", "put", "patch"):
        if "{" in path or "requestBody" not in operation:
            continue
        response = getattr(api, method)(path, [1, 2], format="json")
        assert response.status_code in REFUSALS, (method, path, response.status_code, response.content)
        assert_error_shape(response)
        checked += 1
    assert checked >= 8


def test_every_operation_documents_its_errors_in_the_one_shape(schema):
    for path, method, operation in operations(schema, "get", "post", "put", "patch", "delete"):
        for status in ("400", "401", "403"):
            assert status in operation["responses"], (method, path, status)
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            assert "error" in resolve(schema, content)["properties"], (method, path, status)
