"""Runtime settings through the API: only `value` changes, and only to a value of the right type and range."""

import pytest

from catalog.models import RuntimeSetting
from catalog.runtime_settings import get_setting

pytestmark = pytest.mark.django_db


def test_it_lists_settings_by_key(api, seed):
    body = api.get("/api/settings/?search=heartbeat").json()

    assert [row["key"] for row in body["results"]] == [
        "heartbeat_interval_s",
        "heartbeat_lost_grace_s",
        "heartbeat_stale_missed",
    ]


def test_it_stores_a_valid_value(api, seed):
    response = api.patch("/api/settings/drain_timeout_s/", {"value": 120}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["value"] == 120
    assert (response.json()["default"], response.json()["min_value"]) == (300, 0)
    assert get_setting("drain_timeout_s") == 120


def test_it_refuses_a_value_below_the_minimum(api, seed):
    response = api.put("/api/settings/sweep_interval_s/", {"value": "0"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid", "message": "Invalid input: value: 0 is below the minimum 1.", "fields": {"value": "0 is below the minimum 1."}}
    assert RuntimeSetting.objects.get(key="sweep_interval_s").value == "10"


def test_it_refuses_a_value_that_is_not_an_integer(api, seed):
    response = api.patch("/api/settings/sweep_interval_s/", {"value": "ten"}, format="json")

    assert response.status_code == 400
    assert "is not a valid int" in response.json()["error"]["fields"]["value"]


def test_it_refuses_a_value_that_is_not_a_scalar(api, seed):
    response = api.patch("/api/settings/sweep_interval_s/", {"value": [1]}, format="json")

    assert response.status_code == 400
    assert "value" in response.json()["error"]["fields"]


def test_it_keeps_type_bounds_and_default_read_only(api, seed):
    response = api.patch(
        "/api/settings/sweep_interval_s/",
        {"value": "20", "value_type": "str", "min_value": -5, "default": "99"},
        format="json",
    )

    assert response.status_code == 200
    row = RuntimeSetting.objects.get(key="sweep_interval_s")
    assert (row.value, row.value_type, row.min_value, row.default) == ("20", "int", 1, "10")


def test_it_stores_a_boolean_as_text_and_shows_it_as_a_boolean(api, db):
    RuntimeSetting.objects.create(key="router_enabled", value_type="bool", value="false", default="false")

    response = api.patch("/api/settings/router_enabled/", {"value": True}, format="json")

    assert response.json()["value"] is True and response.json()["default"] is False
    assert RuntimeSetting.objects.get(key="router_enabled").value == "true"


def test_settings_cannot_be_created_or_deleted_through_the_api(api, seed):
    assert api.post("/api/settings/", {"key": "x", "value": "1"}, format="json").status_code == 405
    assert api.delete("/api/settings/sweep_interval_s/").status_code == 405


def test_a_viewer_cannot_change_a_setting(viewer_api, seed):
    assert viewer_api.patch("/api/settings/sweep_interval_s/", {"value": 20}, format="json").status_code == 403
    assert get_setting("sweep_interval_s") == 10
