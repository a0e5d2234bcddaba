"""The Mock `process` runtime end to end: a real worker agent and simulator per instance, reporting to a live
control plane. Readiness comes from a real heartbeat; a killed agent leaves its machine up and is lost by its
heartbeats; a crashed engine is restarted by its agent; a deleted server is gone; termination stops everything."""

from datetime import timedelta

import psutil
import pytest
import requests
from django.utils import timezone

from instances.credentials import engine_api_key
from instances.freshness import is_worker_fresh
from instances.adapters import adapter_for
from instances.lost_workers import sweep_lost_heartbeats
from instances.sweeps import sweep_watchdog
from instances.status import ErrorCode, Status
from instances.termination import terminate_instance
from instances.tests.factories import action_types, fresh, mock_cloud, request_mock, set_setting  # noqa: F401
from inventiv.tests.own_servers import wait_until
from monitoring.models import WorkerState
from providers import mock_process
from providers.base import ServerState
from providers.mock_console import CRASH_ENGINE, DELETE_SERVER, KILL_AGENT, operate
from providers.models import MockServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HEARTBEAT_S = 1  # the smallest heartbeat_interval_s the setting allows
STALE_MISSED = 3  # the seeded heartbeat_stale_missed
GRACE_S = 180  # the seeded heartbeat_lost_grace_s
WAIT_S = 30  # generous for two busy cores; a healthy run takes a few seconds
HTTP_TIMEOUT_S = 10


def wait_for(predicate, *, what: str, timeout: float = WAIT_S):
    return wait_until(predicate, timeout=timeout, what=what)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def process_cloud(mock_cloud, settings, live_server, tmp_path):
    """The Mock cloud with the process runtime, its agents reporting to the live server."""
    settings.INVENTIV_MOCK_RUNTIME = "process"
    settings.PUBLIC_URL = live_server.url
    settings.VAR_DIR = tmp_path  # each agent's log lands under tmp_path/mock/<server id>/
    set_setting("heartbeat_interval_s", HEARTBEAT_S)
    yield
    # Whatever a failed test left running is stopped here: no agent or simulator outlives its test.
    for server in MockServer.objects.all():
        mock_process.ProcessRuntime().stop(server)


def ready_instance():
    instance = request_mock()
    wait_for(lambda: fresh(instance).status == Status.READY, what="the instance to be ready")
    return fresh(instance)


def processes_of(instance) -> list[int]:
    metadata = MockServer.objects.get(pk=instance.provider_server_id).metadata
    return [process.pid for process in mock_process.running_processes(metadata)]


def test_a_process_instance_becomes_ready_by_heartbeat_and_serves_with_its_engine_key(process_cloud):
    instance = ready_instance()  # within WAIT_S, or it fails

    assert "WORKER_REGISTERED" in action_types(instance)
    assert action_types(instance)[-3:] == ["WORKER_VLLM_HTTP_OK", "WORKER_MODEL_LOADED", "INSTANCE_READY"]
    assert WorkerState.objects.get(instance_id=instance.pk).status == "ready"
    assert instance.public_ip == "127.0.0.1" and instance.agent_port and instance.engine_port
    answer = requests.post(
        f"http://127.0.0.1:{instance.engine_port}/v1/chat/completions", timeout=HTTP_TIMEOUT_S,
        headers={"Authorization": f"Bearer {engine_api_key(instance)}"},
        json={"model": "mock-echo", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4},
    )
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "hello there hello there"
    refused = requests.get(f"http://127.0.0.1:{instance.engine_port}/v1/models", timeout=HTTP_TIMEOUT_S)
    assert refused.status_code == 401

    pids = processes_of(instance)
    assert len(pids) == 2  # the agent and its simulator
    terminate_instance(instance, reason="test")

    assert fresh(instance).status == Status.TERMINATED
    assert all(gone(pid) for pid in pids)


def server_of(instance):
    return adapter_for(instance.provider).get_server(instance.provider_server_id, zone=instance.zone.code)


def test_a_killed_agent_leaves_its_machine_running_goes_stale_then_is_lost_and_its_engine_stopped(
        process_cloud, monkeypatch):
    instance = ready_instance()
    pids = processes_of(instance)
    agent_pid = MockServer.objects.get(pk=instance.provider_server_id).metadata["pid"]

    view = operate(MockServer.objects.get(pk=instance.provider_server_id), KILL_AGENT)

    assert gone(agent_pid)
    assert (view.state, view.agent_running) == (ServerState.RUNNING, False)
    wait_for(lambda: not is_worker_fresh(instance.pk), timeout=HEARTBEAT_S * (STALE_MISSED + 2),
             what="the worker to go stale")
    # As on a real cloud, the machine is still there: the watchdog finds its server and leaves it be.
    assert server_of(instance).state == ServerState.RUNNING
    sweep_watchdog()
    assert fresh(instance).status == Status.READY

    later = timezone.now() + timedelta(seconds=GRACE_S + 1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert sweep_lost_heartbeats() == 1

    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.TERMINATED, ErrorCode.HEARTBEAT_LOST)
    assert all(gone(pid) for pid in pids)  # the simulator outlived its agent until the termination


def test_a_crashed_engine_is_restarted_by_its_agent_and_the_machine_stays_ready(process_cloud):
    instance = ready_instance()
    agent_pid = MockServer.objects.get(pk=instance.provider_server_id).metadata["pid"]
    (engine_pid,) = [pid for pid in processes_of(instance) if pid != agent_pid]

    operate(MockServer.objects.get(pk=instance.provider_server_id), CRASH_ENGINE)

    restarted = wait_for(lambda: [pid for pid in processes_of(instance) if pid not in (agent_pid, engine_pid)],
                         what="the agent to restart its engine")
    assert gone(engine_pid) and len(restarted) == 1
    assert not gone(agent_pid)
    assert fresh(instance).status == Status.READY


def test_a_deleted_server_stops_what_ran_on_it_and_the_watchdog_finds_it_gone(process_cloud):
    instance = ready_instance()
    pids = processes_of(instance)

    view = operate(MockServer.objects.get(pk=instance.provider_server_id), DELETE_SERVER)

    assert view.state == ServerState.GONE
    assert all(gone(pid) for pid in pids)
    assert server_of(instance) is None
    sweep_watchdog()
    instance = fresh(instance)
    assert instance.error_code == ErrorCode.PROVIDER_DELETED and instance.status in (Status.TERMINATED, Status.FAILED)
