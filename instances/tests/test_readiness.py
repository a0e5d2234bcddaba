"""Heartbeat-driven readiness, staleness for routing and HEARTBEAT_LOST. The clock is faked where time matters."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from instances.freshness import is_worker_fresh, stale_after_s, with_fresh_worker
from instances.lifecycle import Move, transition
from instances.lost_workers import sweep_lost_heartbeats
from instances.models import Instance
from instances.readiness import check_instance_health
from instances.status import ErrorCode, Status
from instances.sweeps import sweep_startup_health
from instances.tasks import sweep_lost_heartbeats_task
from instances.tests.factories import (  # noqa: F401 (fixtures)
    action_types,
    clock,
    committed,
    fresh,
    make_instance,
    mock_cloud,
)
from instances.tests.worker_factories import MODEL, heartbeat, register, worker_instance
from monitoring.models import ActionLog, HeartbeatSample
from monitoring.tasks import downsample_heartbeats_task

pytestmark = pytest.mark.django_db

INTERVAL_S = 5  # the seeded heartbeat_interval_s
STALE_MISSED = 3  # the seeded heartbeat_stale_missed
GRACE_S = 180  # the seeded heartbeat_lost_grace_s
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


@pytest.fixture
def agent_machines(mock_cloud, settings):
    """Mock machines count as running a worker agent (their servers run nothing: no process starts)."""
    settings.INVENTIV_MOCK_RUNTIME = "process"


def _metadata(instance, action_type):
    return ActionLog.objects.get(instance_id=instance.pk, action_type=action_type).metadata


# --- Readiness ------------------------------------------------------------------------------


def test_a_registered_worker_reporting_starting_keeps_its_instance_starting(agent_machines):
    instance, token = worker_instance(status=Status.INSTALLING)

    register(instance, token)
    answer = heartbeat(instance, token, status="starting", reason="engine not listening yet")

    assert answer.json()["action"] == "serve"
    assert fresh(instance).status == Status.STARTING
    assert action_types(instance)[-1] == "WORKER_REGISTERED"


def test_a_ready_heartbeat_with_the_expected_model_makes_the_instance_ready_at_once(agent_machines):
    instance, token = worker_instance(status=Status.INSTALLING)
    register(instance, token)

    heartbeat(instance, token, status="ready")

    instance = fresh(instance)
    assert instance.status == Status.READY and instance.ready_at is not None
    assert action_types(instance)[-4:] == ["WORKER_REGISTERED", "WORKER_VLLM_HTTP_OK", "WORKER_MODEL_LOADED",
                                            "INSTANCE_READY"]
    ready = ActionLog.objects.get(instance_id=instance.pk, action_type="INSTANCE_READY")
    assert (ready.component, ready.instance_status_before) == ("worker", Status.STARTING)
    assert ready.metadata["model"] == MODEL


def test_a_worker_serving_another_model_does_not_make_the_instance_ready(agent_machines):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)

    heartbeat(instance, token, status="ready", model="Qwen/Qwen2.5-7B-Instruct")

    assert fresh(instance).status == Status.STARTING
    assert "INSTANCE_READY" not in action_types(instance)


# Counted outside a test's transaction, as in production (inside one, runtime settings skip the process's
# cache and cost a query each).
@pytest.mark.django_db(transaction=True)
def test_later_ready_heartbeats_change_nothing_and_cost_at_most_three_queries(agent_machines):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)
    heartbeat(instance, token)
    logged = ActionLog.objects.count()

    with CaptureQueriesContext(connection) as queries:
        answer = heartbeat(instance, token)

    statements = [query["sql"] for query in queries if not query["sql"].startswith(TRANSACTION_CONTROL)]
    assert answer.json() == {"action": "serve", "heartbeat_interval_s": INTERVAL_S}
    # The instance with its registration; the worker's state and its sample (one statement on PostgreSQL).
    assert len(statements) == (2 if connection.vendor == "postgresql" else 3), statements
    assert ActionLog.objects.count() == logged
    assert HeartbeatSample.objects.filter(instance_id=instance.pk).count() == 2


def test_an_engine_error_while_starting_fails_the_instance_with_the_reason_and_log_tail(agent_machines):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)
    tail = ["Loading weights", "torch.OutOfMemoryError: CUDA out of memory"]

    answer = heartbeat(instance, token, status="error", reason="engine exited with code 1 (3 times in a row)",
                       engine_log_tail=tail)

    assert answer.json()["action"] == "shutdown"
    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.TERMINATED, ErrorCode.MODEL_LOAD_FAILED)
    assert "exited with code 1" in instance.error_message
    failed = _metadata(instance, "INSTANCE_STARTUP_FAILED")
    assert failed["engine_log_tail"] == tail and failed["reason"].startswith("engine exited")


def test_a_worker_registered_during_provisioning_moves_its_instance_on_at_the_next_heartbeat(agent_machines):
    instance, token = worker_instance(status=Status.PROVISIONING)
    register(instance, token)
    assert fresh(instance).status == Status.PROVISIONING
    transition(instance, Move(Status.BOOTING, "INSTANCE_CREATED"))

    heartbeat(instance, token, status="starting")

    assert fresh(instance).status == Status.STARTING


def test_the_health_sweep_promotes_a_machine_whose_ready_heartbeat_came_before_it_was_recorded(agent_machines):
    instance, token = worker_instance(status=Status.PROVISIONING)
    register(instance, token)
    heartbeat(instance, token, status="ready")
    transition(instance, Move(Status.BOOTING, "INSTANCE_CREATED"))

    sweep_startup_health()

    assert fresh(instance).status == Status.READY
    assert _metadata(instance, "INSTANCE_READY")["via"] == "health sweep"


# What each word that a machine serves is logged as, right before INSTANCE_READY.
READY_EVIDENCE = {"provider": ["HEALTH_CHECK"], "heartbeat": ["WORKER_VLLM_HTTP_OK", "WORKER_MODEL_LOADED"]}


@pytest.mark.parametrize("word", ["provider", "heartbeat"])
def test_the_provider_and_the_heartbeat_make_an_instance_ready_the_same_way(mock_cloud, settings, word):
    if word == "heartbeat":
        settings.INVENTIV_MOCK_RUNTIME = "process"  # its readiness comes from its worker agent
    instance, token = worker_instance(status=Status.STARTING)
    if word == "heartbeat":
        register(instance, token)
        # A sweep holds the instance meanwhile: the move to ready lets go of it all the same.
        Instance.objects.filter(pk=instance.pk).update(claimed_until=timezone.now() + timedelta(minutes=1))

    def say_ready():
        if word == "provider":
            check_instance_health(instance.pk)  # a Mock machine of the `none` runtime: its server runs
        else:
            heartbeat(instance, token, status="ready")

    say_ready()
    logged = action_types(instance)
    say_ready()

    ready = fresh(instance)
    assert (ready.status, ready.ready_at is not None, ready.claimed_until) == (Status.READY, True, None)
    assert action_types(instance) == logged  # the second word changes nothing
    checks = READY_EVIDENCE[word]
    assert logged[-len(checks) - 1:] == [*checks, "INSTANCE_READY"]
    *evidence, moved = ActionLog.objects.filter(instance_id=instance.pk).order_by("id")[len(logged) - len(checks) - 1:]
    assert [(row.instance_status_before, row.instance_status_after) for row in evidence] == [
        (Status.STARTING, Status.STARTING)] * len(checks)
    assert (moved.instance_status_before, moved.instance_status_after) == (Status.STARTING, Status.READY)
    assert {row.component for row in [*evidence, moved]} == {"orchestrator" if word == "provider" else "worker"}
    assert all(row.metadata == moved.metadata for row in evidence)


def test_the_health_sweep_does_not_make_an_agent_machine_ready_from_its_server_alone(agent_machines):
    instance, _ = worker_instance(status=Status.BOOTING)

    sweep_startup_health()

    assert fresh(instance).status == Status.INSTALLING


# --- Freshness and lost workers --------------------------------------------------------------


def test_a_worker_is_stale_once_it_missed_three_heartbeats(agent_machines, clock):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)
    heartbeat(instance, token)
    ready = Instance.objects.filter(status=Status.READY)

    clock.advance(INTERVAL_S * STALE_MISSED)
    assert stale_after_s() == INTERVAL_S * STALE_MISSED
    assert is_worker_fresh(instance.pk) and list(with_fresh_worker(ready)) == [instance]

    clock.advance(1)
    assert not is_worker_fresh(instance.pk) and not with_fresh_worker(ready).exists()
    assert fresh(instance).status == Status.READY  # stale only for routing until the grace passes


def test_a_worker_silent_past_the_grace_fails_its_instance_which_is_terminated(agent_machines, clock, committed):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)
    heartbeat(instance, token)

    clock.advance(GRACE_S - 1)
    assert sweep_lost_heartbeats() == 0
    clock.advance(2)
    with committed():
        assert sweep_lost_heartbeats_task.delay().get() == 1

    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.TERMINATED, ErrorCode.HEARTBEAT_LOST)
    assert action_types(instance)[-6:] == ["HEARTBEAT_LOST", "REQUEST_TERMINATE", "EXECUTE_TERMINATE",
                                           "PROVIDER_TERMINATE", "TERMINATION_CONFIRMED", "INSTANCE_TERMINATED"]
    assert _metadata(instance, "HEARTBEAT_LOST")["grace_s"] == GRACE_S


def test_a_draining_machine_that_never_sent_a_heartbeat_is_lost_after_the_grace_too(agent_machines, clock, committed):
    instance, _ = worker_instance(status=Status.DRAINING)

    clock.advance(GRACE_S + 1)
    with committed():
        sweep_lost_heartbeats()

    assert fresh(instance).error_code == ErrorCode.HEARTBEAT_LOST
    assert "never sent one" in fresh(instance).error_message


def test_heartbeats_keep_a_ready_machine_alive_past_the_grace(agent_machines, clock):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)
    for _ in range(3):
        heartbeat(instance, token)
        clock.advance(GRACE_S / 2)

    assert sweep_lost_heartbeats() == 0
    assert fresh(instance).status == Status.READY


def test_the_lost_heartbeat_sweep_ignores_mock_machines_that_run_no_agent(mock_cloud, clock):
    instance = make_instance(status=Status.READY)

    clock.advance(GRACE_S * 10)

    assert sweep_lost_heartbeats() == 0
    assert fresh(instance).status == Status.READY


def test_the_retention_task_folds_old_samples(agent_machines, clock):
    instance, token = worker_instance(status=Status.READY)
    register(instance, token)
    heartbeat(instance, token)
    heartbeat(instance, token)

    clock.advance(3 * 3600)
    folded = downsample_heartbeats_task.delay().get()

    assert folded["deleted_raw"] == 2 and folded["folded"] >= 1
    assert set(HeartbeatSample.objects.filter(instance_id=instance.pk).values_list("resolution_s", flat=True)) == {60}
