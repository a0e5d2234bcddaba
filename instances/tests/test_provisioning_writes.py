"""What a provision writes and how: the steps' rows written with the moves they lead to, transitions inside
a caller's transaction, and a bound on the queries of the hot path (bench/provision.py measures its time)."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from catalog.runtime_settings import get_setting
from instances.lifecycle import InvalidTransition, Move, UnitOfWork, transition
from instances.models import Instance
from instances.provisioning import provision_instance
from instances.status import JUST_BOOTED, Status
from instances.termination import terminate_instance
from instances.tests.factories import (  # noqa: F401 (fixtures)
    action_types,
    fresh,
    make_instance,
    mock_cloud,
    request_mock,
)
from monitoring.models import ActionLog
from monitoring.services import new_action
from providers.mock import MockProvider, inject_fault

pytestmark = pytest.mark.django_db
# The queries a provision costs in production (its own BEGIN and COMMIT; runtime settings from the process's
# cache, which a transaction bypasses) are seen only outside a test's transaction: the tests that count
# them commit for real.
COUNTS_REAL_QUERIES = pytest.mark.django_db(transaction=True)

STEPS = ["PROVIDER_CREATE", "PERSIST_PROVIDER_ID", "PROVIDER_START", "PROVIDER_GET_IP"]
# A Mock provision from claim to ready: claim (with the machine's credentials) and load (2); the run's row
# (1); the Mock cloud's create (2: faults, insert; a first attempt does not look for an earlier server) and
# the server id (1); power-on (3, its answer carries the address); one transaction for booting, the health
# check and ready (5: BEGIN, the locked read, one update and one insert for both moves, COMMIT). It took 48
# before the hot path was trimmed: this keeps it from creeping back.
PROVISION_MAX_QUERIES = 14
ORCH = ActionLog.Component.ORCHESTRATOR


def test_every_step_of_a_provision_keeps_its_parent_timing_and_outcome(mock_cloud):
    instance = request_mock()

    execute = ActionLog.objects.get(instance_id=instance.pk, action_type="EXECUTE_CREATE")
    steps = list(ActionLog.objects.filter(instance_id=instance.pk, action_type__in=STEPS).order_by("created_at", "id"))
    assert [step.action_type for step in steps] == STEPS
    for step in steps:
        assert (step.parent_id, step.status) == (execute.pk, "success")
        assert step.duration_ms is not None and step.completed_at >= step.created_at
    assert ActionLog.objects.get(instance_id=instance.pk, action_type="PERSIST_PROVIDER_ID").metadata == {
        "server_id": fresh(instance).provider_server_id}


def test_a_failed_power_on_logs_the_steps_before_it_then_the_failure(mock_cloud):
    inject_fault("start_fails", message="no power")

    instance = request_mock()

    assert action_types(instance)[:6] == ["REQUEST_CREATE", "EXECUTE_CREATE", *STEPS[:3], "EXECUTE_CREATE"]
    start = ActionLog.objects.get(instance_id=instance.pk, action_type="PROVIDER_START")
    assert start.status == "failed" and "no power" in start.error_message


def test_a_power_on_error_that_never_clears_still_logs_every_attempt(mock_cloud):
    inject_fault("start_fails", permanent=False, remaining=None)

    instance = fresh(request_mock())

    assert instance.status == Status.PROVISIONING
    counts = {step: ActionLog.objects.filter(instance_id=instance.pk, action_type=step).count() for step in STEPS}
    # The first run and every bounded retry tried the power-on once each; the server was created once.
    assert counts == {"PROVIDER_CREATE": 1, "PERSIST_PROVIDER_ID": 1, "PROVIDER_START": 6, "PROVIDER_GET_IP": 0}


@COUNTS_REAL_QUERIES
def test_provisioning_a_mock_instance_takes_a_bounded_number_of_queries(mock_cloud, django_assert_max_num_queries):
    instance = make_instance(status=Status.PROVISIONING, with_server=False)
    get_setting("provision_requeue_after_s")  # runtime settings are read once per process, not per provision

    with django_assert_max_num_queries(PROVISION_MAX_QUERIES):
        provision_instance(instance.pk)

    assert fresh(instance).status == Status.READY
    assert fresh(instance).claimed_until is None


def test_only_a_retry_asks_the_provider_for_a_server_an_earlier_attempt_left(mock_cloud, monkeypatch):
    seen = []
    create = MockProvider.create_server
    monkeypatch.setattr(MockProvider, "create_server",
                        lambda self, spec: seen.append(spec.may_exist) or create(self, spec))
    inject_fault("create_fails", permanent=False, remaining=1)

    instance = request_mock()

    # The first run got as far as the create, which failed: the second cannot know whether a server exists.
    assert seen == [False, True]
    assert fresh(instance).status == Status.READY


@COUNTS_REAL_QUERIES
def test_booting_and_ready_in_one_provision_are_one_update_and_one_insert(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING, with_server=False)

    with CaptureQueriesContext(connection) as queries:
        provision_instance(instance.pk)

    final = [query["sql"].split()[0] for query in queries.captured_queries][-5:]
    assert final == ["BEGIN", "SELECT", "UPDATE", "INSERT", "COMMIT"]
    ready = fresh(instance)
    assert (ready.status, ready.booted_at is not None, ready.ready_at is not None) == (Status.READY, True, True)
    assert action_types(instance)[-3:] == ["INSTANCE_CREATED", "HEALTH_CHECK", "INSTANCE_READY"]


def test_a_move_writes_the_rows_of_what_led_to_it_first_and_them_alone_when_there_is_no_move(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING)

    transition(instance, Move(Status.BOOTING, "INSTANCE_CREATED"),
               steps=[new_action("PROVIDER_GET_IP", component=ORCH, instance_id=instance.pk)])
    transition(instance, Move(Status.BOOTING, "INSTANCE_CREATED"),
               steps=[new_action("HEALTH_CHECK", component=ORCH, instance_id=instance.pk)])

    assert action_types(instance) == ["PROVIDER_GET_IP", "INSTANCE_CREATED", "HEALTH_CHECK"]


def test_an_invalid_move_inside_a_transaction_leaves_that_transaction_usable(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING)

    with transaction.atomic():
        with pytest.raises(InvalidTransition):
            transition(instance, Move(Status.ARCHIVED, "ARCHIVE_INSTANCE"))
        moved = transition(instance, Move(Status.BOOTING, "INSTANCE_CREATED"))[1]

    assert moved and fresh(instance).status == Status.BOOTING


def test_a_unit_of_work_writes_two_moves_with_one_locked_read_one_update_and_one_insert(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING)
    held = [new_action("PROVIDER_GET_IP", component=ORCH, instance_id=instance.pk)]

    with CaptureQueriesContext(connection) as queries, UnitOfWork(instance, steps=held) as work:
        work.move(Move(Status.BOOTING, "INSTANCE_CREATED", fields={"public_ip": "10.0.0.7"}))
        work.move(Move(Status.READY, "INSTANCE_READY"))

    assert _statements(queries) == ["SELECT", "UPDATE", "INSERT"]
    ready = fresh(instance)
    assert (ready.status, ready.public_ip, ready.booted_at is not None, ready.ready_at is not None) == (
        Status.READY, "10.0.0.7", True, True)
    assert action_types(instance) == ["PROVIDER_GET_IP", "INSTANCE_CREATED", "INSTANCE_READY"]
    assert held == []
    assert (instance.status, instance.public_ip) == (Status.READY, "10.0.0.7")  # the caller's object follows


def test_a_unit_of_work_that_fails_writes_nothing_and_keeps_its_held_rows(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING)
    held = [new_action("PROVIDER_GET_IP", component=ORCH, instance_id=instance.pk)]

    # In a caller's transaction (a savepoint here: the test's own transaction must stay usable).
    with pytest.raises(RuntimeError), transaction.atomic(), UnitOfWork(instance, steps=held) as work:
        work.move(Move(Status.BOOTING, "INSTANCE_CREATED"))
        raise RuntimeError("the worker broke mid-way")

    assert fresh(instance).status == Status.PROVISIONING and instance.status == Status.PROVISIONING
    assert action_types(instance) == []
    assert [row.action_type for row in held] == ["PROVIDER_GET_IP"]  # left for its held_actions() block


def test_a_refused_move_in_a_unit_of_work_keeps_the_moves_before_it(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING)

    with pytest.raises(InvalidTransition), UnitOfWork(instance) as work:
        work.move(Move(Status.BOOTING, "INSTANCE_CREATED"))
        work.move(Move(Status.ARCHIVED, "ARCHIVE_INSTANCE"))

    assert fresh(instance).status == Status.BOOTING
    assert action_types(instance) == ["INSTANCE_CREATED"]


def test_terminating_an_instance_that_is_gone_changes_nothing_and_leaves_the_transaction_usable(mock_cloud):
    instance = make_instance(status=Status.READY, with_server=False)
    Instance.objects.filter(pk=instance.pk).delete()

    with transaction.atomic():
        terminate_instance(instance, reason="cleanup")
        still_usable = Instance.objects.count()

    assert still_usable == 0


def test_a_compare_and_set_move_leaves_an_instance_another_worker_moved_alone(mock_cloud):
    instance = make_instance(status=Status.READY)

    fresh_instance, moved = transition(instance, Move(Status.INSTALLING, "HEALTH_CHECK",
                                                      allowed_from=JUST_BOOTED))

    assert (moved, fresh_instance.status) == (False, Status.READY)
    assert action_types(instance) == []


def _statements(queries) -> list[str]:
    """The first word of each statement, transaction control left out (a test's own transaction turns a
    unit's BEGIN and COMMIT into savepoints, or into nothing)."""
    words = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    return [word for word in words if word not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")]


def test_an_instance_terminated_during_its_power_on_is_not_moved_on_and_its_steps_stay_logged(mock_cloud, monkeypatch):
    start = MockProvider.start_server

    def start_then_terminate(self, server_id, *, zone):
        answer = start(self, server_id, zone=zone)
        terminate_instance(Instance.objects.get(provider_server_id=server_id), reason="operator")
        return answer

    monkeypatch.setattr(MockProvider, "start_server", start_then_terminate)

    instance = fresh(request_mock())

    assert instance.status in (Status.TERMINATING, Status.TERMINATED)
    assert (instance.booted_at, instance.ready_at) == (None, None)
    logged = action_types(instance)
    assert {"PROVIDER_START", "PROVIDER_GET_IP"} <= set(logged)
    assert not {"INSTANCE_CREATED", "HEALTH_CHECK", "INSTANCE_READY"} & set(logged)
