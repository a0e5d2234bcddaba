"""Every action-log row of an instance's life is complete: its duration, its status before and after, and a
documented error code when it failed (README, "API conventions")."""

from instances.status import ErrorCode, Status
from instances.tests.factories import MOCK_REQUEST, mock_cloud  # noqa: F401 (fixture)
from monitoring.models import ActionLog
from monitoring.services import ActionError

URL = "/api/instances/"
DOCUMENTED_CODES = {*ErrorCode.values, ActionError.PROVIDER_ERROR, ActionError.PROVIDER_UNAVAILABLE,
                    ActionError.INTERNAL_ERROR}


def rows_of(instance_id) -> list[ActionLog]:
    return list(ActionLog.objects.filter(instance_id=instance_id).order_by("created_at", "id"))


def assert_complete(rows: list[ActionLog]) -> None:
    for row in rows:
        where = f"{row.action_type} ({row.status})"
        assert row.duration_ms is not None and row.duration_ms >= 0, where
        assert row.instance_status_before and row.instance_status_after, where
        assert row.completed_at is not None, where
        if row.status == ActionLog.Status.FAILED:
            assert row.error_code in DOCUMENTED_CODES, where


def test_a_mock_provision_and_termination_log_complete_rows(api, mock_cloud, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(URL, MOCK_REQUEST, format="json").json()
    assert api.get(f"{URL}{created['id']}/").json()["status"] == Status.READY
    provisioned = rows_of(created["id"])
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"{URL}{created['id']}/terminate/", {"reason": "test over"}, format="json")

    rows = rows_of(created["id"])
    assert len(provisioned) >= 9 and len(rows) > len(provisioned)
    assert_complete(rows)
    provider_rows = [row for row in rows if row.action_type.startswith("PROVIDER_")]
    assert {"PROVIDER_CREATE", "PROVIDER_START", "PROVIDER_TERMINATE"} <= {row.action_type for row in provider_rows}
    # A provider call does not move the instance: the move that follows it does.
    assert all(row.instance_status_before == row.instance_status_after for row in provider_rows)
    by_type = {row.action_type: row for row in rows}
    assert (by_type["INSTANCE_CREATED"].instance_status_before, by_type["INSTANCE_CREATED"].instance_status_after) == (
        Status.PROVISIONING, Status.BOOTING)


def test_a_rejected_request_logs_a_complete_failed_row(api, mock_cloud):
    rejected = api.post(URL, {**MOCK_REQUEST, "zone": "mars-1"}, format="json").json()["error"]
    rows = rows_of(rejected["instance"])
    assert [row.status for row in rows] == [ActionLog.Status.FAILED]
    assert rows[0].error_code == ErrorCode.INVALID_ZONE
    assert_complete(rows)
