import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import ActionLog

URL = "/api/action-logs/"
NOW = timezone.now()


def make_log(*, minutes_ago: int = 0, action_type: str = "HEALTH_CHECK", component: str = "orchestrator",
             status: str = "success", **fields) -> ActionLog:
    return ActionLog.objects.create(
        action_type=action_type, component=component, status=status,
        created_at=NOW - timedelta(minutes=minutes_ago), **fields,
    )


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def logs(db):
    instance = uuid.uuid4()
    return {
        "instance": instance,
        "request": make_log(minutes_ago=30, action_type="REQUEST_CREATE", component="api", instance_id=instance),
        "provider": make_log(minutes_ago=20, action_type="PROVIDER_CREATE", instance_id=instance, duration_ms=900),
        "failed": make_log(minutes_ago=10, action_type="PROVIDER_START", status="failed", error_code="PROVIDER_START_FAILED",
                           instance_id=instance, duration_ms=50),
        "running": make_log(minutes_ago=5, action_type="HEALTH_CHECK", component="worker", status="in_progress"),
        "other": make_log(minutes_ago=1, action_type="SCALE_DECISION", component="autoscaler"),
    }


def test_it_lists_action_logs_newest_first(viewer_api, logs):
    response = viewer_api.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 5
    assert ids(response) == [logs[name].pk for name in ("other", "running", "failed", "provider", "request")]
    assert "stats" not in body


def test_it_filters_by_instance_component_status_and_type(viewer_api, logs):
    assert ids(viewer_api.get(URL, {"instance": str(logs["instance"]), "component": "orchestrator"})) == [
        logs["failed"].pk, logs["provider"].pk
    ]
    assert ids(viewer_api.get(URL, {"status": "in_progress"})) == [logs["running"].pk]
    assert ids(viewer_api.get(URL, {"action_type": "REQUEST_CREATE"})) == [logs["request"].pk]


def test_it_filters_by_several_action_types_repeated_or_comma_separated(viewer_api, logs):
    expected = [logs["failed"].pk, logs["request"].pk]
    assert ids(viewer_api.get(URL, {"action_type": ["REQUEST_CREATE", "PROVIDER_START"]})) == expected
    assert ids(viewer_api.get(URL, {"action_type": "REQUEST_CREATE,PROVIDER_START"})) == expected


def test_it_filters_by_time_range(viewer_api, logs):
    response = viewer_api.get(URL, {
        "created_after": (NOW - timedelta(minutes=20)).isoformat(),
        "created_before": (NOW - timedelta(minutes=5)).isoformat(),
    })
    assert ids(response) == [logs["failed"].pk, logs["provider"].pk]


def test_it_orders_by_creation_time_or_duration(viewer_api, logs):
    assert ids(viewer_api.get(URL, {"ordering": "created_at"}))[0] == logs["request"].pk
    by_duration = ids(viewer_api.get(URL, {"ordering": "-duration_ms", "instance": str(logs["instance"])}))
    assert by_duration[:2] == [logs["provider"].pk, logs["failed"].pk]


def test_it_pages_with_limit_and_offset(viewer_api, logs):
    first = viewer_api.get(URL, {"limit": 2}).json()
    assert [row["id"] for row in first["results"]] == [logs["other"].pk, logs["running"].pk]
    assert first["count"] == 5 and "offset=2" in first["next"]
    second = viewer_api.get(URL, {"limit": 2, "offset": 4}).json()
    assert [row["id"] for row in second["results"]] == [logs["request"].pk]
    assert second["next"] is None


def test_stats_count_all_rows_matching_rows_and_matching_rows_per_status(viewer_api, logs):
    body = viewer_api.get(URL, {"stats": "1", "instance": str(logs["instance"])}).json()
    assert body["stats"] == {
        "total": 5, "total_estimated": False, "filtered": 3, "filtered_estimated": False,
        "by_status": {"success": 2, "failed": 1, "in_progress": 0},
    }
    assert body["count"] == 3


def test_stats_without_filters_count_the_whole_table(viewer_api, logs):
    stats = viewer_api.get(URL, {"stats": "true"}).json()["stats"]
    assert stats["total"] == stats["filtered"] == 5
    assert stats["by_status"] == {"success": 3, "failed": 1, "in_progress": 1}


def test_a_limit_above_the_maximum_is_clamped_not_refused(viewer_api, logs):
    response = viewer_api.get(URL, {"limit": 5000})
    assert response.status_code == 200 and len(response.json()["results"]) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"instance": "not-a-uuid"}, "instance"),
        ({"component": "kitchen"}, "component"),
        ({"status": "done"}, "status"),
        ({"action_type": "request create"}, "action_type"),
        ({"action_type": "%"}, "action_type"),  # django-filter %-formats its messages: no 500 from a `%`
        ({"action_type": "%(x)s,%d"}, "action_type"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"stats": "maybe"}, "stats"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_the_field(viewer_api, logs, params, field):
    response = viewer_api.get(URL, params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_it_shows_one_action_log_with_its_payloads(viewer_api, logs):
    log = make_log(action_type="PROVIDER_CREATE", request_payload={"zone": "fr-par-2"}, metadata={"attempt": 2})
    body = viewer_api.get(f"{URL}{log.pk}/").json()
    assert body["request_payload"] == {"zone": "fr-par-2"} and body["metadata"] == {"attempt": 2}


def test_action_logs_are_read_only_and_need_a_signed_in_user(api, client, logs):
    assert api.post(URL, {"action_type": "X", "component": "api"}, format="json").status_code == 405
    assert client.get(URL).status_code in (401, 403)


def test_large_sets_are_estimated_and_flagged_where_postgresql_can_estimate_them(viewer_api, logs, monkeypatch):
    from django.db import connection

    from monitoring import selectors

    monkeypatch.setattr(selectors, "ESTIMATE_ABOVE", 2)
    estimates = connection.vendor == "postgresql"
    if estimates:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE monitoring_actionlog")

    whole = viewer_api.get(URL, {"stats": "1"}).json()
    assert (whole["stats"]["total_estimated"], whole["stats"]["filtered_estimated"]) == (estimates, estimates)
    # ANALYZE sampled all five rows: the statistics are exact here.
    assert whole["stats"]["by_status"] == {"success": 3, "failed": 1, "in_progress": 1}
    assert whole["count"] == 5

    broad = viewer_api.get(URL, {"stats": "1", "status": "success"}).json()
    assert broad["stats"]["filtered_estimated"] is estimates
    assert broad["stats"]["by_status"]["failed"] == broad["stats"]["by_status"]["in_progress"] == 0
    assert broad["stats"]["filtered"] >= 1 and len(broad["results"]) == 3
