"""Acceptance (issue 14): a GPU machine you run yourself, attached with a join token, serves /v1 traffic
through the router. Done as the README's "A GPU machine you run yourself" says, with its commands: the host
registered through `POST /api/hosts/`, a vLLM-protocol simulator on loopback in place of vLLM, and the agent
started by hand (`python -m worker_agent`, INVENTIV_ENGINE_MODE=attach) with the join token. The control
plane is the whole ASGI app (Django, the worker fast path and the router) under uvicorn."""

import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.db import connection

from conftest import api_token
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import set_setting
from inventiv.tests.own_servers import free_port, wait_until
from providers.models import StaticMachine
from router.tests.servers import SimulatorProcess, UvicornThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPOSITORY = Path(__file__).resolve().parents[2]
ENGINE_KEY = "operator-engine-key-0123456789"
WAIT_S = 60  # generous for two busy cores; a healthy run takes a few seconds
HTTP_TIMEOUT_S = 10


def wait_for(predicate, *, what: str, timeout: float = WAIT_S):
    return wait_until(predicate, timeout=timeout, what=what)


@pytest.fixture
def control_plane(seed, admin_user):
    from inventiv.asgi import application

    set_setting("heartbeat_interval_s", 1)
    server = UvicornThread(application).start()
    server.token = api_token(admin_user)  # `manage.py create_api_token admin`
    yield server
    server.stop()
    # The web threads keep their database connections; the test database can only be dropped without them.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:  # whatever a failed test left running
        if process.poll() is None:
            process.kill()
            process.wait(HTTP_TIMEOUT_S)


def test_a_host_attached_with_a_join_token_serves_v1_traffic_through_the_router(control_plane, processes, tmp_path):
    url, operator = control_plane.url, {"Authorization": f"Token {control_plane.token}"}
    # 1. The control plane: register the machine (README: curl -X POST .../api/hosts/ ...).
    registered = requests.post(f"{url}/api/hosts/", headers=operator, timeout=HTTP_TIMEOUT_S, json={
        "address": "127.0.0.1", "instance_type": "L4-1-24G", "zone": "home-lab", "hourly_price": "0.50",
        "model": "mock-echo"})
    assert registered.status_code == 201, registered.text
    instance_id, join_token = registered.json()["instance"]["id"], registered.json()["join_token"]
    assert Instance.objects.get(pk=instance_id).status == Status.INSTALLING

    # 2. The machine: the engine (the simulator playing vLLM, with the operator's key) ...
    engine = SimulatorProcess(model="mock-echo", api_key=ENGINE_KEY)
    processes.append(engine.process)
    # ... and the agent, started by hand as the README says.
    state_dir = tmp_path / "agent-state"
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVENTIV_")}
    env.update(INVENTIV_CONTROL_PLANE_URL=url, INVENTIV_JOIN_TOKEN=join_token, INVENTIV_MODEL="mock-echo",
               INVENTIV_ENGINE_API_KEY=ENGINE_KEY, INVENTIV_ENGINE_MODE="attach",
               INVENTIV_ENGINE_PORT=str(engine.port), INVENTIV_AGENT_STATE_DIR=str(state_dir),
               INVENTIV_AGENT_HOST="127.0.0.1", INVENTIV_AGENT_PORT=str(free_port()))
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        agent = subprocess.Popen([sys.executable, "-m", "worker_agent"], cwd=REPOSITORY, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
    processes.append(agent)

    # 3. It joins, registers and becomes ready by heartbeat.
    wait_for(lambda: Instance.objects.get(pk=instance_id).status == Status.READY, what="the host to be ready")
    instance = Instance.objects.get(pk=instance_id)
    assert (instance.public_ip, instance.engine_port) == ("127.0.0.1", engine.port)
    assert instance.cost_per_hour == Decimal("0.50")  # FinOps counts the operator's price
    assert stat.S_IMODE((state_dir / "worker.json").stat().st_mode) == 0o600
    assert join_token not in log_path.read_text()

    # 4. /v1 traffic through the router reaches it (README: curl .../v1/chat/completions).
    key = requests.post(f"{url}/api/api-keys/", headers=operator, json={"name": "static-host"},
                        timeout=HTTP_TIMEOUT_S).json()["key"]

    def chat():
        answer = requests.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                               timeout=HTTP_TIMEOUT_S, json={"model": "mock-echo", "max_tokens": 4,
                                                             "messages": [{"role": "user", "content": "hello there"}]})
        return answer if answer.status_code == 200 else None

    answer = wait_for(chat, what="the router to answer from the host")
    assert answer.headers["X-Inventiv-Instance"] == instance_id
    assert answer.json()["choices"][0]["message"]["content"] == "hello there hello there"

    # 5. Terminate = detach: Inventiv lets go of the machine; the machine and its engine keep running, and
    # the agent's worker token is revoked (its heartbeats are refused) until the operator stops it.
    terminated = requests.post(f"{url}/api/instances/{instance_id}/terminate/", headers=operator, json={},
                               timeout=HTTP_TIMEOUT_S)
    assert terminated.status_code == 202
    wait_for(lambda: Instance.objects.get(pk=instance_id).status == Status.TERMINATED, what="the detach")
    assert StaticMachine.objects.get(instance_id=instance_id).released_at is not None
    assert engine.process.poll() is None  # vLLM (here the simulator) is the operator's: still running
    wait_for(lambda: "401 unauthorized" in log_path.read_text(), what="the agent's heartbeat to be refused")
    agent.terminate()  # README: `docker compose stop agent`, or Ctrl-C
    assert agent.wait(WAIT_S) == 0
    engine.stop()
