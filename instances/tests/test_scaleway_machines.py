"""Scaleway machines through the real adapter and the strict fake API: a server the provider stops after its
power-on (stock ran out) is powered on once more, then failed as out of stock; provider errors met while
retrying stay visible on the instance."""

from contextlib import nullcontext as committed_nothing  # the request's on-commit provision is not run

import pytest

from instances import orphans
from instances.health import POWER_ON_RETRY_GRACE_S
from instances.orphans import sweep_orphans
from instances.provisioning import provision_instance
from instances.readiness import check_instance_health
from instances.requests import request_instance
from instances.status import ErrorCode, Status
from instances.tests.factories import (  # noqa: F401 (fixtures)
    action_types,
    clock,
    committed,
    fresh,
    mock_cloud,
    scaleway_cloud,
)
from providers.base import TransientProviderError
from providers.testing.fake_scaleway import FALLBACK_DETAIL

pytestmark = pytest.mark.django_db


@pytest.fixture
def scaleway(scaleway_cloud, monkeypatch):
    monkeypatch.setattr(orphans, "_throttled_until", {})  # each test starts with no provider throttling
    return scaleway_cloud


def request_l4(committed):
    with committed():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                    model="Qwen/Qwen2.5-0.5B-Instruct")
    return fresh(instance)


def power_ons(fake) -> int:
    return sum(1 for r in fake.requests_to(r"/action$") if r.json()["action"] == "poweron")


def test_a_server_that_falls_back_once_is_powered_on_again_and_goes_on(scaleway, committed):
    scaleway.fall_back_after_power_on(times=1)

    instance = request_l4(committed)
    check_instance_health(instance.pk)

    instance = fresh(instance)
    assert instance.status == Status.INSTALLING and instance.power_on_retried_at is not None
    assert power_ons(scaleway) == 2
    assert action_types(instance).count("PROVIDER_START") == 2


def test_a_server_that_falls_back_twice_fails_out_of_stock_within_minutes_and_is_deleted(scaleway, committed, clock):
    scaleway.fall_back_after_power_on(times=2)

    instance = request_l4(committed)
    check_instance_health(instance.pk)  # still stopped, but the second power-on is given time
    assert fresh(instance).status == Status.BOOTING
    clock.advance(POWER_ON_RETRY_GRACE_S)
    with committed():
        check_instance_health(instance.pk)

    instance = fresh(instance)
    assert instance.error_code == ErrorCode.PROVIDER_OUT_OF_STOCK
    assert FALLBACK_DETAIL in instance.error_message
    assert instance.status in (Status.TERMINATING, Status.TERMINATED)
    assert power_ons(scaleway) == 2


def test_a_throttled_create_shows_the_providers_answer_while_it_is_retried(scaleway):
    with committed_nothing():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                    model="Qwen/Qwen2.5-0.5B-Instruct")
    scaleway.throttle_next(r"/servers$", retry_after_s=17, method="POST")

    with pytest.raises(TransientProviderError) as raised:
        provision_instance(instance.pk)  # the task retries this after Retry-After (retries.py)

    assert raised.value.retry_after == 17
    last = fresh(instance).last_provider_error
    assert (last["during"], last["retry_after"], last["permanent"]) == ("create", 17, False)
    assert "HTTP 429" in last["message"]
    provision_instance(instance.pk)  # the retry
    assert fresh(instance).last_provider_error == {} and fresh(instance).status == Status.INSTALLING


def test_a_refused_create_names_the_argument_scaleway_refused(scaleway):
    with committed_nothing():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                    model="Qwen/Qwen2.5-0.5B-Instruct")
    scaleway.fail_next(r"/servers$", method="POST", status=400, body={
        "type": "invalid_arguments", "message": "invalid argument(s)",
        "details": [{"argument_name": "volumes.0.size", "reason": "constraint", "help_message": "too large"}]})

    provision_instance(instance.pk)

    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.PROVISIONING_FAILED, ErrorCode.PROVIDER_CREATE_FAILED)
    assert "invalid argument(s) [volumes.0.size: constraint (too large)]" in instance.error_message
    assert instance.last_provider_error["details"][0]["argument_name"] == "volumes.0.size"


def test_the_orphan_sweep_leaves_a_throttling_provider_alone_until_it_may_ask_again(scaleway, committed, clock):
    request_l4(committed)
    scaleway.throttle_next(r"/zones/fr-par-2/servers$", retry_after_s=60, method="GET")
    listings = lambda: len(scaleway.requests_to(r"/zones/fr-par-2/servers$", method="GET"))  # noqa: E731

    sweep_orphans()
    asked = listings()
    sweep_orphans()
    assert listings() == asked  # left alone while it asked to wait
    clock.advance(61)
    sweep_orphans()
    assert listings() > asked
