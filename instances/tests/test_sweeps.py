"""The beat sweeps finish what crashes, lost tasks and the provider leave behind. The clock is faked."""

import uuid

import pytest

from instances.claims import claimed_batches
from instances.lifecycle import Move, transition
from instances.models import Instance, OrphanServer
from instances.orphans import sweep_orphans
from instances.status import ErrorCode, Status
from instances.sweeps import (
    TERMINATOR_GRACE_S,
    sweep_lost_provisions,
    sweep_startup_health,
    sweep_terminating,
    sweep_watchdog,
)
from instances.tests.factories import (  # noqa: F401 (fixtures)
    action_types,
    clock,
    committed,
    create_mock_server,
    fresh,
    make_instance,
    mock_cloud,
    request_mock,
    servers_of,
    set_setting,
)
from monitoring.models import ActionLog
from providers.mock import inject_fault, vanish_server
from providers.models import MockServer

pytestmark = pytest.mark.django_db

STARTUP_TIMEOUT_S = 300  # the seeded startup_timeout_s


def _count(instance, action_type):
    return ActionLog.objects.filter(instance_id=instance.pk, action_type=action_type).count()


# --- Startup health -------------------------------------------------------------------------


def test_a_booting_machine_becomes_ready_at_the_sweep_once_its_boot_delay_passed(mock_cloud, clock, committed):
    set_setting("mock_boot_delay_s", 20)
    instance = request_mock()
    assert fresh(instance).status == Status.BOOTING

    with committed():
        sweep_startup_health()
    assert fresh(instance).status == Status.BOOTING

    clock.advance(21)
    with committed():
        sweep_startup_health()

    assert fresh(instance).status == Status.READY
    assert action_types(instance)[-2:] == ["HEALTH_CHECK", "INSTANCE_READY"]


def test_a_machine_that_does_not_boot_in_time_fails_and_is_terminated(mock_cloud, clock, committed):
    set_setting("mock_boot_delay_s", 3600)
    instance = request_mock()

    clock.advance(STARTUP_TIMEOUT_S - 1)
    with committed():
        sweep_startup_health()
    assert fresh(instance).status == Status.BOOTING

    clock.advance(2)
    with committed():
        sweep_startup_health()

    instance = fresh(instance)
    assert instance.status == Status.TERMINATED
    assert (instance.error_code, instance.deletion_reason) == (ErrorCode.STARTUP_TIMEOUT, ErrorCode.STARTUP_TIMEOUT)
    failed = ActionLog.objects.get(instance_id=instance.pk, action_type="INSTANCE_STARTUP_FAILED")
    assert (failed.instance_status_before, failed.instance_status_after) == ("booting", "startup_failed")
    assert servers_of(instance).get().deleted_at is not None


def test_a_server_that_vanishes_while_booting_ends_the_instance_as_provider_deleted(mock_cloud, clock, committed):
    set_setting("mock_boot_delay_s", 30)
    instance = fresh(request_mock())
    vanish_server(instance.provider_server_id)

    with committed():
        sweep_startup_health()

    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.TERMINATED, ErrorCode.PROVIDER_DELETED)


# --- Watchdog -------------------------------------------------------------------------------


def test_the_watchdog_notices_a_server_deleted_behind_inventivs_back(mock_cloud):
    instance, healthy = fresh(request_mock()), fresh(request_mock())
    vanish_server(instance.provider_server_id)

    sweep_watchdog()

    instance = fresh(instance)
    assert instance.status == Status.TERMINATED
    assert (instance.error_code, instance.deletion_reason) == (ErrorCode.PROVIDER_DELETED, ErrorCode.PROVIDER_DELETED)
    assert action_types(instance)[-1] == "PROVIDER_DELETED_DETECTED"
    assert fresh(healthy).status == Status.READY
    assert action_types(healthy)[-1] == "INSTANCE_READY"


def test_an_injected_vanish_fault_is_caught_by_the_watchdog_once_it_strikes(mock_cloud, clock):
    inject_fault("vanish", delay_s=60)
    instance = request_mock()
    assert fresh(instance).status == Status.READY

    sweep_watchdog()
    assert fresh(instance).status == Status.READY

    clock.advance(61)
    sweep_watchdog()
    assert (fresh(instance).status, fresh(instance).error_code) == (Status.TERMINATED, ErrorCode.PROVIDER_DELETED)


# --- Terminator -----------------------------------------------------------------------------


def _lose_the_terminate_task(instance):
    """An instance moved to terminating whose terminate task never ran (lost with its worker)."""
    transition(instance, Move(Status.TERMINATING, "REQUEST_TERMINATE", fields={"deletion_reason": "test"}))


def test_an_instance_stuck_in_terminating_is_finished_by_the_sweep(mock_cloud, clock):
    instance = request_mock()
    _lose_the_terminate_task(instance)

    sweep_terminating()
    assert fresh(instance).status == Status.TERMINATING  # the task still has its grace period

    clock.advance(TERMINATOR_GRACE_S + 1)
    sweep_terminating()

    assert fresh(instance).status == Status.TERMINATED
    assert action_types(instance)[-5:] == [
        "REQUEST_TERMINATE", "TERMINATOR_RETRY", "PROVIDER_TERMINATE", "TERMINATION_CONFIRMED", "INSTANCE_TERMINATED",
    ]
    assert servers_of(instance).get().volumes_deleted_at is not None


def test_the_terminator_waits_for_a_deletion_under_way_and_retries_no_more_than_needed(mock_cloud, clock):
    set_setting("mock_deletion_delay_s", 100)
    instance = request_mock()
    _lose_the_terminate_task(instance)
    clock.advance(TERMINATOR_GRACE_S + 1)

    sweep_terminating()  # asks the provider again; the deletion now takes 100 s
    clock.advance(10)
    sweep_terminating()  # still claimed after its retry: left alone
    clock.advance(60)
    sweep_terminating()  # deletion under way: nothing to do
    assert fresh(instance).status == Status.TERMINATING
    assert _count(instance, "TERMINATOR_RETRY") == 1

    clock.advance(40)
    sweep_terminating()
    assert fresh(instance).status == Status.TERMINATED


# --- Lost provisions ------------------------------------------------------------------------


def test_a_lost_provision_is_requeued_and_completes(mock_cloud, clock, committed):
    instance = make_instance(status=Status.PROVISIONING, with_server=False, progress_at=clock())

    clock.advance(29)
    with committed():
        sweep_lost_provisions()
    assert fresh(instance).status == Status.PROVISIONING

    clock.advance(2)
    with committed():
        sweep_lost_provisions()

    instance = fresh(instance)
    assert instance.status == Status.READY
    assert instance.requeue_count == 1
    assert action_types(instance)[0] == "REQUEUE_PROVISION"
    assert servers_of(instance).count() == 1


def test_requeues_are_capped_and_then_the_provision_fails(mock_cloud, clock, committed):
    set_setting("provision_max_requeues", 2)
    inject_fault("create_fails", permanent=False, remaining=None)
    instance = request_mock()

    for _ in range(3):
        clock.advance(31)
        with committed():
            sweep_lost_provisions()

    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.PROVISIONING_FAILED, ErrorCode.PROVIDER_CREATE_FAILED)
    assert instance.requeue_count == 2
    rows = ActionLog.objects.filter(instance_id=instance.pk, action_type="REQUEUE_PROVISION").order_by("id")
    assert [row.status for row in rows] == ["success", "success", "failed"]
    assert MockServer.objects.count() == 0

    clock.advance(31)
    with committed():
        sweep_lost_provisions()
    assert _count(instance, "REQUEUE_PROVISION") == 3


def test_a_provision_still_being_worked_on_is_not_requeued(mock_cloud, clock):
    instance = make_instance(status=Status.PROVISIONING, with_server=False, progress_at=clock())
    clock.advance(31)
    Instance.objects.filter(pk=instance.pk).update(claimed_until=clock.advance(0).replace(year=2100))

    assert sweep_lost_provisions() == 0
    assert _count(instance, "REQUEUE_PROVISION") == 0


# --- Orphans --------------------------------------------------------------------------------


def test_a_tagged_server_nobody_owns_is_terminated_after_the_grace_period_not_before(mock_cloud, clock):
    set_setting("orphan_grace_s", 300)
    owned = request_mock()
    stray = create_mock_server(str(uuid.uuid4()))
    untagged = create_mock_server(str(uuid.uuid4()), tags=["someone-else"])

    sweep_orphans()
    clock.advance(299)
    sweep_orphans()

    assert ActionLog.objects.filter(action_type="ORPHAN_DETECTED").count() == 1
    assert MockServer.objects.get(pk=stray.server_id).terminate_requested_at is None

    clock.advance(2)
    assert sweep_orphans() == 1

    assert MockServer.objects.get(pk=stray.server_id).terminate_requested_at is not None
    terminated = ActionLog.objects.get(action_type="ORPHAN_TERMINATED")
    assert terminated.metadata["server_id"] == stray.server_id
    assert MockServer.objects.get(pk=untagged.server_id).terminate_requested_at is None
    assert servers_of(owned).get().terminate_requested_at is None
    assert fresh(owned).status == Status.READY

    clock.advance(1)
    sweep_orphans()  # the provider no longer lists it: the record goes
    assert OrphanServer.objects.count() == 0


def test_the_server_of_a_terminated_instance_is_an_orphan(mock_cloud, clock):
    set_setting("orphan_grace_s", 0)
    request_mock()
    leftover = make_instance(status=Status.TERMINATED)

    sweep_orphans()

    assert MockServer.objects.get(pk=leftover.provider_server_id).terminate_requested_at is not None
    detected = ActionLog.objects.get(action_type="ORPHAN_DETECTED")
    assert detected.instance_id == leftover.pk


def test_a_server_whose_instance_is_still_being_created_is_not_an_orphan(mock_cloud):
    set_setting("orphan_grace_s", 0)
    request_mock()
    creating = make_instance(status=Status.PROVISIONING, with_server=False)
    create_mock_server(str(creating.pk), started=False)

    sweep_orphans()

    assert OrphanServer.objects.count() == 0
    assert servers_of(creating).get().terminate_requested_at is None


# --- Claims ---------------------------------------------------------------------------------


def test_two_sweeps_running_side_by_side_never_claim_the_same_instance(mock_cloud):
    set_setting("mock_boot_delay_s", 600)
    booting = {request_mock().pk for _ in range(3)}
    queryset = Instance.objects.filter(status=Status.BOOTING)

    first = claimed_batches(queryset, batch=2)
    second = claimed_batches(queryset, batch=2)
    first_batch = {instance.pk for instance in next(first)}
    second_batch = {instance.pk for instance in next(second)}

    assert len(first_batch) == 2 and len(second_batch) == 1
    assert first_batch | second_batch == booting
    assert next(first, None) is None and next(second, None) is None
    assert not Instance.objects.filter(claimed_until__isnull=False).exists()
