"""Writing the action log: rows written as steps end, or held and written together."""

import pytest

from monitoring.models import ActionLog
from monitoring.services import StepFailed, action_step, held_actions, new_action, record_action, write_actions

pytestmark = pytest.mark.django_db

ORCH = ActionLog.Component.ORCHESTRATOR


def logged() -> list[tuple[str, str]]:
    return list(ActionLog.objects.order_by("id").values_list("action_type", "status"))


def test_held_rows_are_written_together_in_the_order_they_were_recorded():
    parent = record_action("EXECUTE_CREATE", component=ORCH)
    held: list[ActionLog] = []
    with action_step("PROVIDER_START", component=ORCH, parent=parent, into=held):
        pass
    with action_step("PROVIDER_GET_IP", component=ORCH, parent=parent, into=held) as row:
        row.response_payload = {"public_ip": "127.0.0.1"}
    held.append(new_action("INSTANCE_CREATED", component=ORCH))
    assert logged() == [("EXECUTE_CREATE", "success")]

    write_actions(held)

    assert held == []
    assert logged() == [("EXECUTE_CREATE", "success"), ("PROVIDER_START", "success"),
                        ("PROVIDER_GET_IP", "success"), ("INSTANCE_CREATED", "success")]
    get_ip = ActionLog.objects.get(action_type="PROVIDER_GET_IP")
    assert get_ip.parent == parent and get_ip.duration_ms is not None and get_ip.completed_at is not None
    assert get_ip.response_payload == {"public_ip": "127.0.0.1"}


def test_held_rows_are_written_when_the_block_raises_the_failed_step_included():
    with pytest.raises(RuntimeError), held_actions() as held:
        with action_step("PROVIDER_START", component=ORCH, into=held):
            pass
        with action_step("PROVIDER_GET_IP", component=ORCH, into=held):
            raise RuntimeError("the API timed out")

    assert logged() == [("PROVIDER_START", "success"), ("PROVIDER_GET_IP", "failed")]
    assert ActionLog.objects.get(action_type="PROVIDER_GET_IP").error_message == "the API timed out"


def test_rows_written_by_the_change_they_led_to_are_not_written_twice():
    with held_actions() as held:
        with action_step("PROVIDER_START", component=ORCH, into=held):
            pass
        write_actions(held)

    assert logged() == [("PROVIDER_START", "success")]


class _Refused(Exception):
    permanent = True
    code = None


class _Later(Exception):
    permanent = False
    code = None


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (_Refused("bad request"), "PROVIDER_ERROR"),
        (_Later("timeout"), "PROVIDER_UNAVAILABLE"),
        (ValueError("a bug"), "INTERNAL_ERROR"),
        (StepFailed("HEALTH_CHECK_FAILED", "no answer"), "HEALTH_CHECK_FAILED"),
    ],
)
def test_a_failed_step_gets_a_documented_code_never_a_class_name(exc, code):
    with pytest.raises(type(exc)), action_step("PROVIDER_START", component=ORCH, instance_status="booting"):
        raise exc
    row = ActionLog.objects.get()
    assert (row.status, row.error_code) == ("failed", code)
    assert (row.instance_status_before, row.instance_status_after) == ("booting", "booting")
    assert row.duration_ms is not None


def test_an_instantaneous_row_has_a_zero_duration_and_one_status_on_both_sides():
    row = record_action("HEALTH_CHECK", component=ORCH, status_before="booting")
    assert (row.duration_ms, row.instance_status_before, row.instance_status_after) == (0, "booting", "booting")
    running = record_action("EXECUTE_CREATE", component=ORCH, status=ActionLog.Status.IN_PROGRESS)
    assert running.duration_ms is None and running.completed_at is None
