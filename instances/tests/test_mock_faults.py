"""Faults armed on the Mock cloud take the lifecycle down the same paths as a real cloud's failures."""

import pytest

from instances.status import ErrorCode, Status
from instances.sweeps import sweep_startup_health
from instances.health import POWER_ON_RETRY_GRACE_S
from instances.tests.factories import action_types, clock, fresh, mock_cloud, request_mock  # noqa: F401
from providers.mock_console import arm_fault

pytestmark = pytest.mark.django_db


def test_a_power_on_that_falls_back_to_stopped_is_powered_on_once_more_and_the_instance_gets_ready(mock_cloud):
    arm_fault(kind="start_falls_back")

    instance = request_mock()
    assert fresh(instance).status == Status.BOOTING  # accepted, but the server is stopped again

    sweep_startup_health()  # sees it stopped: powers it on once more
    sweep_startup_health()  # sees it running

    instance = fresh(instance)
    assert instance.status == Status.READY and instance.power_on_retried_at is not None
    assert action_types(instance).count("PROVIDER_START") == 2


def test_a_second_fall_back_fails_the_instance_out_of_stock(mock_cloud, clock):
    arm_fault(kind="start_falls_back", remaining=2)
    instance = request_mock()

    sweep_startup_health()  # powers it on once more: it falls back again
    clock.advance(POWER_ON_RETRY_GRACE_S)
    sweep_startup_health()

    instance = fresh(instance)
    assert instance.error_code == ErrorCode.PROVIDER_OUT_OF_STOCK
    assert instance.status in (Status.STARTUP_FAILED, Status.TERMINATING)  # its termination is enqueued
    assert "out of stock" in instance.error_message


def test_a_create_out_of_stock_fails_the_instance_with_its_code(mock_cloud):
    arm_fault(kind="out_of_stock")

    instance = fresh(request_mock())

    assert (instance.status, instance.error_code) == (Status.PROVISIONING_FAILED, ErrorCode.PROVIDER_OUT_OF_STOCK)
