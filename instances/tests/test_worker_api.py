"""The worker endpoints: token authentication, payload validation, the protocol's answers and codes."""

import io
import json
import tarfile

import pytest
from django.test import Client

from instances.lifecycle import Move, transition
from instances.status import ErrorCode, Status
from instances.tests.factories import action_types, fresh, mock_cloud  # noqa: F401 (fixtures)
from instances.tests.worker_factories import (
    heartbeat,
    heartbeat_payload,
    post,
    register,
    register_payload,
    worker_instance,
)
from monitoring.models import ActionLog, HeartbeatSample, WorkerState

pytestmark = pytest.mark.django_db

INSTANCE_HEADER = "HTTP_X_INVENTIV_INSTANCE_ID"


def _nothing_recorded(instance, status):
    assert fresh(instance).status == status
    assert not WorkerState.objects.filter(instance_id=instance.pk).exists()
    assert not HeartbeatSample.objects.filter(instance_id=instance.pk).exists()
    assert not ActionLog.objects.filter(instance_id=instance.pk, action_type__startswith="WORKER_").exists()


# --- Authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("path, payload_of", [("register", register_payload), ("heartbeat", heartbeat_payload)])
def test_a_missing_wrong_or_foreign_token_is_refused_with_401_and_changes_nothing(mock_cloud, path, payload_of):
    instance, token = worker_instance()
    other, other_token = worker_instance()
    payload = payload_of(instance)

    answers = [
        post(path, payload, token=None),
        post(path, payload, token=token[:-1] + ("A" if token[-1] != "A" else "B")),
        post(path, payload, token=other_token),
        post(path, payload, token=""),
    ]

    assert [answer.status_code for answer in answers] == [401] * 4
    assert all("error" in answer.json() for answer in answers)
    _nothing_recorded(instance, Status.INSTALLING)
    _nothing_recorded(other, Status.INSTALLING)


def test_an_unknown_instance_gets_the_same_answer_as_a_wrong_token(mock_cloud):
    instance, token = worker_instance()
    wrong_token = post("register", register_payload(instance), token="not-the-token")

    unknown = post("register", register_payload(instance, instance_id="6f1c1a4e-0000-4000-8000-000000000000"),
                   token=token)
    not_an_id = post("register", register_payload(instance, instance_id="inst-123"), token=token)

    assert unknown.status_code == not_an_id.status_code == 401
    assert unknown.json() == not_an_id.json() == wrong_token.json() == {"error": "invalid worker token"}


@pytest.mark.parametrize("status", [Status.TERMINATED, Status.ARCHIVED])
def test_the_token_of_a_terminated_instance_is_revoked(mock_cloud, status):
    instance, token = worker_instance(status=status)

    answer = register(instance, token)

    assert answer.status_code == 401 and "revoked" in answer.json()["error"]
    _nothing_recorded(instance, status)


def test_a_get_on_the_heartbeat_is_refused_with_405(mock_cloud):
    answer = Client().get("/api/worker/heartbeat")
    assert answer.status_code == 405 and answer["Allow"] == "POST"


# --- Validation -----------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_refused_with_400(mock_cloud):
    instance, token = worker_instance()

    answer = post("heartbeat", "{not json", token=token)

    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid payload", "fields": {"body": "must be JSON"}}
    _nothing_recorded(instance, Status.INSTALLING)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"host": {"memory_used_mb": -1}}, "host.memory_used_mb"),
        ({"gpus": [{"index": 1e12}]}, "gpus[0].index"),
        ({"gpus": [{"index": 0}] * 65}, "gpus"),
        ({"engine": {"kv_cache_usage": 7.0}}, "engine.kv_cache_usage"),
        ({"in_flight": -3}, "in_flight"),
        ({"status": "dancing"}, "status"),
    ],
)
def test_an_absurd_heartbeat_is_refused_with_400_naming_the_field_and_changes_nothing(mock_cloud, overrides, field):
    instance, token = worker_instance(status=Status.STARTING)
    assert register(instance, token).status_code == 200
    state_before = WorkerState.objects.values().get(instance_id=instance.pk)

    answer = heartbeat(instance, token, **overrides)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid payload" and field in answer.json()["fields"]
    assert WorkerState.objects.values().get(instance_id=instance.pk) == state_before
    assert not HeartbeatSample.objects.filter(instance_id=instance.pk).exists()
    assert fresh(instance).status == Status.STARTING


def test_an_absurd_registration_is_refused_and_registers_nothing(mock_cloud):
    instance, token = worker_instance()

    answer = register(instance, token, host={"memory_total_mb": -1024}, engine_port=70000)

    assert answer.status_code == 400
    assert set(answer.json()["fields"]) == {"host.memory_total_mb", "engine_port"}
    _nothing_recorded(instance, Status.INSTALLING)


# --- Registration and heartbeats ------------------------------------------------------------


def test_registering_answers_the_heartbeat_interval_and_stores_the_ports(mock_cloud):
    instance, token = worker_instance(status=Status.INSTALLING)

    answer = register(instance, token)

    assert answer.status_code == 200 and answer.json() == {"heartbeat_interval_s": 5}
    instance = fresh(instance)
    assert (instance.status, instance.agent_port, instance.engine_port) == (Status.STARTING, 18081, 18000)
    state = WorkerState.objects.get(instance_id=instance.pk)
    assert state.registered_at is not None and state.engine_version == "0.33.0+inventiv.sim"


def test_a_heartbeat_before_registering_is_answered_409_and_records_nothing(mock_cloud):
    instance, token = worker_instance(status=Status.STARTING)

    answer = heartbeat(instance, token, status="starting")

    assert answer.status_code == 409 and answer.json() == {"error": "not registered"}
    _nothing_recorded(instance, Status.STARTING)


def test_a_heartbeat_records_the_latest_state_and_one_sample(mock_cloud):
    instance, token = worker_instance(status=Status.READY)
    register(instance, token)

    answer = heartbeat(instance, token)

    assert answer.status_code == 200 and answer.json() == {"action": "serve", "heartbeat_interval_s": 5}
    state = WorkerState.objects.get(instance_id=instance.pk)
    assert (state.status, state.in_flight, state.heartbeats) == ("ready", 3, 1)
    sample = HeartbeatSample.objects.get(instance_id=instance.pk)
    assert (sample.running, sample.kv_cache_usage, sample.gpu_power_w) == (2, 0.41, 80.4)


@pytest.mark.parametrize(
    "status, action",
    [
        (Status.READY, "serve"),
        (Status.DRAINING, "drain"),
        (Status.TERMINATING, "shutdown"),
        (Status.FAILED, "shutdown"),
        (Status.STARTUP_FAILED, "shutdown"),
    ],
)
def test_the_heartbeat_answer_tells_the_worker_what_its_instance_status_asks(mock_cloud, status, action):
    instance, token = worker_instance(status=status)
    register(instance, token)

    assert heartbeat(instance, token).json()["action"] == action


def test_an_instance_terminated_while_running_revokes_its_worker_at_the_next_heartbeat(mock_cloud):
    instance, token = worker_instance(status=Status.READY)
    register(instance, token)
    transition(instance, Move(Status.TERMINATED, "INSTANCE_TERMINATED"))

    assert heartbeat(instance, token).status_code == 401


# --- Install failures and the agent archive --------------------------------------------------


def test_a_failed_install_step_fails_the_instance_and_terminates_it(mock_cloud):
    instance, token = worker_instance(status=Status.INSTALLING)

    answer = post("install-failed", {"step": "pull-engine-image", "message": "manifest unknown"}, token=token,
                  **{INSTANCE_HEADER: str(instance.pk)})

    assert answer.status_code == 200
    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.TERMINATED, ErrorCode.WORKER_INSTALL_FAILED)
    assert "pull-engine-image" in instance.error_message and "manifest unknown" in instance.error_message
    failed = ActionLog.objects.get(instance_id=instance.pk, action_type="INSTANCE_STARTUP_FAILED")
    assert failed.metadata["step"] == "pull-engine-image" and failed.instance_status_after == Status.STARTUP_FAILED
    assert "PROVIDER_TERMINATE" in action_types(instance)


def test_an_install_failure_names_a_known_step_and_needs_the_token(mock_cloud):
    instance, token = worker_instance(status=Status.INSTALLING)
    named = {INSTANCE_HEADER: str(instance.pk)}

    unknown_step = post("install-failed", {"step": "rm -rf /"}, token=token, **named)
    no_token = post("install-failed", {"step": "docker"}, token=None, **named)

    assert unknown_step.status_code == 400 and "step" in unknown_step.json()["fields"]
    assert no_token.status_code == 401
    assert fresh(instance).status == Status.INSTALLING


def test_a_late_install_failure_leaves_a_ready_instance_alone(mock_cloud):
    instance, token = worker_instance(status=Status.READY)

    answer = post("install-failed", {"step": "start-engine", "instance_id": str(instance.pk)}, token=token)

    assert answer.status_code == 200 and answer.json() == {"instance_status": Status.READY}
    assert fresh(instance).error_code == ""


def test_the_agent_archive_holds_the_package_and_its_requirements_without_its_tests(mock_cloud):
    instance, token = worker_instance()

    by_header = Client().get("/api/worker/agent.tar.gz", HTTP_AUTHORIZATION=f"Bearer {token}",
                             **{INSTANCE_HEADER: str(instance.pk)})
    by_query = Client().get(f"/api/worker/agent.tar.gz?instance_id={instance.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
    anonymous = Client().get(f"/api/worker/agent.tar.gz?instance_id={instance.pk}")

    assert by_header.status_code == by_query.status_code == 200
    assert by_header["Content-Type"] == "application/gzip" and by_header.content == by_query.content
    names = tarfile.open(fileobj=io.BytesIO(by_header.content), mode="r:gz").getnames()
    assert {"worker_agent/__main__.py", "worker_agent/requirements.txt", "worker_agent/simulator/app.py"} <= set(names)
    assert not any("/tests/" in name or "__pycache__" in name for name in names)
    assert anonymous.status_code == 401 and "error" in json.loads(anonymous.content)


def test_the_worker_endpoints_stay_out_of_the_session_api_and_need_no_csrf_token(mock_cloud, admin_user):
    instance, token = worker_instance()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    answer = client.post("/api/worker/register", data=json.dumps(register_payload(instance)),
                         content_type="application/json")
    with_token = client.post("/api/worker/register", data=json.dumps(register_payload(instance)),
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert answer.status_code == 401  # a staff session is not a worker token
    assert with_token.status_code == 200
