"""The lifecycle end to end on the Mock cloud: request -> ready -> terminated -> archived, and reinstall.

Real services, real Celery tasks (run eagerly, on commit: `committed()`), a real Mock cloud in the database.
"""

import pytest

from instances.lifecycle import InvalidTransition
from instances.readiness import reinstall_instance
from instances.status import Status
from instances.sweeps import TERMINATOR_GRACE_S, sweep_terminating
from instances.termination import archive_instance, terminate_instance
from instances.tests.factories import (  # noqa: F401 (fixtures)
    action_types,
    clock,
    committed,
    fresh,
    mock_cloud,
    request_mock,
    servers_of,
    set_setting,
)
from monitoring.models import ActionLog

pytestmark = pytest.mark.django_db

CREATE_TO_READY = [
    "REQUEST_CREATE", "EXECUTE_CREATE", "PROVIDER_CREATE", "PERSIST_PROVIDER_ID", "PROVIDER_START",
    "PROVIDER_GET_IP", "INSTANCE_CREATED", "HEALTH_CHECK", "INSTANCE_READY",
]


def test_a_mock_request_becomes_ready_with_exactly_the_create_steps_logged(mock_cloud, admin_user):
    instance = fresh(request_mock(actor=admin_user))

    assert instance.status == Status.READY
    assert action_types(instance) == CREATE_TO_READY
    created = ActionLog.objects.get(instance_id=instance.pk, action_type="INSTANCE_CREATED")
    ready = ActionLog.objects.get(instance_id=instance.pk, action_type="INSTANCE_READY")
    assert (created.instance_status_before, created.instance_status_after) == ("provisioning", "booting")
    assert (ready.instance_status_before, ready.instance_status_after) == ("booting", "ready")
    request = ActionLog.objects.get(instance_id=instance.pk, action_type="REQUEST_CREATE")
    assert (request.component, request.user) == ("api", admin_user)
    assert ActionLog.objects.filter(instance_id=instance.pk, status="failed").count() == 0


def test_a_ready_instance_knows_its_server_address_and_price(mock_cloud):
    instance = fresh(request_mock())
    server = servers_of(instance).get()

    assert instance.provider_server_id == str(server.pk)
    assert instance.public_ip == "127.0.0.1"
    assert str(instance.cost_per_hour) == "0.2500"
    assert instance.booted_at and instance.ready_at and instance.provider_created_at
    assert instance.claimed_until is None
    assert server.tags == ["inventiv", f"inventiv-instance={instance.pk}"]
    assert server.name == f"inventiv-{instance.pk}"


def test_terminating_a_ready_instance_deletes_its_server_and_volumes(mock_cloud, admin_user, committed):
    instance = request_mock()

    with committed():
        terminate_instance(instance, reason="operator request", actor=admin_user)

    instance = fresh(instance)
    assert instance.status == Status.TERMINATED
    assert instance.deletion_reason == "operator request"
    assert action_types(instance)[len(CREATE_TO_READY):] == [
        "REQUEST_TERMINATE", "EXECUTE_TERMINATE", "PROVIDER_TERMINATE", "TERMINATION_CONFIRMED", "INSTANCE_TERMINATED",
    ]
    server = servers_of(instance).get()
    assert server.deleted_at is not None and server.volumes_deleted_at is not None


def test_termination_stays_pending_while_the_provider_still_lists_the_server(mock_cloud, clock, committed):
    set_setting("mock_deletion_delay_s", 15)
    instance = request_mock()

    with committed():
        terminate_instance(instance, reason="scale down")
    assert fresh(instance).status == Status.TERMINATING
    assert action_types(instance)[-1] == "TERMINATION_PENDING"

    clock.advance(TERMINATOR_GRACE_S + 1)
    with committed():
        sweep_terminating()

    instance = fresh(instance)
    assert instance.status == Status.TERMINATED
    assert action_types(instance)[len(CREATE_TO_READY):] == [
        "REQUEST_TERMINATE", "EXECUTE_TERMINATE", "PROVIDER_TERMINATE", "TERMINATION_PENDING",
        "TERMINATION_CONFIRMED", "INSTANCE_TERMINATED",
    ]


def test_an_instance_without_a_server_is_terminated_at_once(mock_cloud, committed):
    rejected = request_mock(zone="nowhere-1")

    with committed():
        terminate_instance(rejected, reason="cleanup")

    assert fresh(rejected).status == Status.TERMINATED
    assert action_types(rejected) == ["REQUEST_CREATE", "REQUEST_TERMINATE", "INSTANCE_TERMINATED"]


def test_terminating_twice_changes_nothing_the_second_time(mock_cloud, committed):
    instance = request_mock()
    with committed():
        terminate_instance(instance, reason="first")
    logged = action_types(instance)

    with committed():
        again = terminate_instance(instance, reason="second")

    assert again.status == Status.TERMINATED
    assert again.deletion_reason == "first"
    assert action_types(instance) == logged


def test_only_a_terminated_instance_can_be_archived(mock_cloud, committed):
    instance = request_mock()
    with pytest.raises(InvalidTransition):
        archive_instance(instance)

    with committed():
        terminate_instance(instance, reason="done")
    archive_instance(instance)

    assert fresh(instance).status == Status.ARCHIVED
    assert fresh(instance).archived_at is not None
    assert action_types(instance)[-1] == "ARCHIVE_INSTANCE"


def test_a_rejected_request_can_be_archived_as_it_is(mock_cloud):
    rejected = request_mock(model="")

    archive_instance(rejected)

    assert fresh(rejected).status == Status.ARCHIVED


def test_reinstalling_a_ready_instance_runs_the_health_path_again(mock_cloud, admin_user, committed):
    instance = request_mock()

    with committed():
        reinstall_instance(instance, actor=admin_user)

    assert fresh(instance).status == Status.READY
    assert action_types(instance)[len(CREATE_TO_READY):] == [
        "REQUEST_REINSTALL", "EXECUTE_REINSTALL", "HEALTH_CHECK", "INSTANCE_READY",
    ]
    reinstall = ActionLog.objects.get(instance_id=instance.pk, action_type="EXECUTE_REINSTALL")
    assert (reinstall.instance_status_before, reinstall.instance_status_after) == ("ready", "starting")
    assert servers_of(instance).count() == 1


def test_reinstall_is_refused_for_an_instance_without_a_server(mock_cloud):
    rejected = request_mock(instance_type="NOPE")

    with pytest.raises(InvalidTransition):
        reinstall_instance(rejected)
    assert fresh(rejected).status == Status.PROVISIONING_FAILED
