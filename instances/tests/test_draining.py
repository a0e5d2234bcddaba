from datetime import timedelta

import pytest
from django.utils import timezone

from instances.draining import DRAIN_SETTLE_S, DrainRefused, drain_instance, finish_drain, sweep_drains
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import (  # noqa: F401 (fixtures)
    action_types,
    clock,
    committed,
    fresh,
    make_instance,
    mock_cloud,
    run_on_commit,
)
from instances.tests.worker_factories import heartbeat_payload, post, register, worker_instance
from monitoring.models import ActionLog, WorkerState

pytestmark = pytest.mark.django_db


def draining_with_worker(clock, *, in_flight: int):
    """A ready instance whose worker registered and reports `in_flight` requests, then drained."""
    instance, token = worker_instance(status=Status.READY)
    register(instance, token)
    post("heartbeat", heartbeat_payload(instance, in_flight=in_flight), token=token)
    with run_on_commit():  # the drain is finished by a task enqueued on commit
        drain_instance(instance, reason="test", timeout_s=60)
    return fresh(instance), token


def test_it_drains_a_ready_instance_and_tells_its_worker(mock_cloud, clock):
    instance, token = draining_with_worker(clock, in_flight=2)

    answer = post("heartbeat", heartbeat_payload(instance, status="draining", in_flight=2), token=token)

    assert instance.status == Status.DRAINING
    assert instance.drain_deadline_at == instance.draining_at + timedelta(seconds=60)
    assert answer.json()["action"] == "drain"
    assert "REQUEST_DRAIN" in action_types(instance)


def test_it_waits_for_in_flight_requests_before_terminating(mock_cloud, clock):
    instance, token = draining_with_worker(clock, in_flight=2)
    clock.advance(DRAIN_SETTLE_S + 1)
    post("heartbeat", heartbeat_payload(instance, status="draining", in_flight=1), token=token)

    assert finish_drain(instance.pk) is False
    assert fresh(instance).status == Status.DRAINING

    clock.advance(5)
    post("heartbeat", heartbeat_payload(instance, status="draining", in_flight=0), token=token)

    # The empty heartbeat finished the drain by itself (eager tasks): DRAIN_COMPLETE, then terminated.
    assert fresh(instance).status == Status.TERMINATED
    complete = ActionLog.objects.get(instance_id=instance.pk, action_type="DRAIN_COMPLETE")
    assert complete.metadata["timed_out"] is False


def test_it_does_not_trust_an_empty_heartbeat_sent_as_the_drain_began(mock_cloud, clock):
    instance, token = draining_with_worker(clock, in_flight=0)

    post("heartbeat", heartbeat_payload(instance, status="draining", in_flight=0), token=token)

    # The router may have picked the machine just before it saw `draining`: wait for a later heartbeat.
    assert fresh(instance).status == Status.DRAINING


def test_it_terminates_a_draining_instance_when_the_drain_timeout_passes(mock_cloud, clock, committed):
    instance, token = draining_with_worker(clock, in_flight=4)
    clock.advance(61)
    post("heartbeat", heartbeat_payload(instance, status="draining", in_flight=4), token=token)

    with committed():
        assert sweep_drains() == 1

    assert fresh(instance).status == Status.TERMINATED
    complete = ActionLog.objects.get(instance_id=instance.pk, action_type="DRAIN_COMPLETE")
    assert complete.metadata == {"in_flight": 4, "timed_out": True, "why": "drain timeout passed"}
    assert fresh(instance).deletion_reason == "drain timeout"


def test_it_finishes_at_once_the_drain_of_a_machine_without_worker_agent(mock_cloud, committed):
    instance = make_instance(status=Status.READY)

    with committed():
        drain_instance(instance, reason="test")

    assert fresh(instance).status == Status.TERMINATED
    steps = action_types(instance)
    assert steps.index("REQUEST_DRAIN") < steps.index("DRAIN_COMPLETE") < steps.index("INSTANCE_TERMINATED")


def test_it_refuses_to_drain_an_instance_that_is_not_ready(mock_cloud):
    instance = make_instance(status=Status.BOOTING)

    with pytest.raises(DrainRefused):
        drain_instance(instance, reason="test")
    assert fresh(instance).status == Status.BOOTING


def test_the_api_drains_an_instance_and_refuses_one_that_is_not_ready(mock_cloud, api):
    ready = make_instance(status=Status.READY)
    WorkerState.objects.create(instance_id=ready.pk, last_heartbeat_at=timezone.now(), in_flight=3)
    booting = make_instance(status=Status.BOOTING)

    accepted = api.post(f"/api/instances/{ready.pk}/drain/", {"timeout_s": 120}, format="json")
    refused = api.post(f"/api/instances/{booting.pk}/drain/", {}, format="json")
    invalid = api.post(f"/api/instances/{ready.pk}/drain/", {"timeout_s": -1}, format="json")

    assert accepted.status_code == 202
    assert accepted.json()["status"] == "draining"
    assert refused.status_code == 409
    assert "only a ready instance" in refused.json()["error"]["message"]
    assert invalid.status_code == 400
    assert "timeout_s" in invalid.json()["error"]["fields"]
    assert Instance.objects.get(pk=booting.pk).status == Status.BOOTING


def test_the_dashboard_drains_an_instance(mock_cloud, client, admin_user):
    instance = make_instance(status=Status.READY)
    WorkerState.objects.create(instance_id=instance.pk, last_heartbeat_at=timezone.now(), in_flight=1)
    client.force_login(admin_user)

    page = client.get(f"/instances/{instance.pk}/")
    response = client.post(f"/instances/{instance.pk}/drain/")

    assert b"Drain" in page.content
    assert response.status_code == 302
    assert fresh(instance).status == Status.DRAINING
