"""A real PostgreSQL restarted under a running control plane: heartbeats and the API answer 503 with
Retry-After while it is down (never a 500), and everything reconnects after, kept connections included.

The cluster is the test's own (own_servers.py), started on a free port; the control plane runs as it does in
production (uvicorn on inventiv.asgi, connections kept for DB_CONN_MAX_AGE).
"""

import json

import pytest
import requests

from inventiv.tests.own_servers import ControlPlane, OwnPostgres, needs_postgresql_binaries, wait_until
from inventiv.unavailable import RETRY_AFTER_S

pytestmark = [pytest.mark.slow, needs_postgresql_binaries(), pytest.mark.timeout(600)]

WEB_THREADS = 2
RECONNECT_S = 30
# Answers in a row, each thread's kept connection served several times, that prove the recovery.
HEALTHY_IN_A_ROW = 4 * WEB_THREADS
SETUP = """
import json
from django.contrib.auth import get_user_model
from knox.models import AuthToken
from instances.status import Status
from instances.tests.worker_factories import worker_instance
user = get_user_model().objects.create_superuser("ops", "ops@example.com", "correct-horse-battery")
instance, worker_token = worker_instance(status=Status.STARTING)
print(json.dumps({"api_token": AuthToken.objects.create(user, expiry=None)[1], "instance_id": str(instance.pk),
                  "worker_token": worker_token}))
"""


@pytest.fixture
def postgresql():
    with OwnPostgres.running("inventiv") as cluster:
        yield cluster


@pytest.fixture
def control_plane(postgresql, tmp_path):
    plane = ControlPlane(tmp_path, database_url=postgresql.url("inventiv"), DB_CONN_MAX_AGE="600")
    plane.manage("migrate", "--noinput")
    plane.manage("loaddata", "catalog")
    plane.ids = json.loads(plane.manage("shell", "-c", SETUP).strip().splitlines()[-1])
    plane.url = plane.web(threads=WEB_THREADS)
    yield plane
    plane.stop()


class Agent:
    """What a worker agent and an operator's script send, and every status they got back."""

    def __init__(self, plane: ControlPlane):
        self.plane, self.ids = plane, plane.ids
        self.answers: list[int] = []

    def post(self, path: str, payload: dict) -> requests.Response:
        response = requests.post(f"{self.plane.url}/api/worker/{path}", data=json.dumps(payload), timeout=15,
                                 headers={"Authorization": f"Bearer {self.ids['worker_token']}"})
        self.answers.append(response.status_code)
        return response

    def register(self) -> requests.Response:
        return self.post("register", {
            "instance_id": self.ids["instance_id"], "agent_version": "0.1.0", "model": "mock-echo",
            "agent_port": 18081, "engine_port": 18000, "gpus": [], "host": {"hostname": "inv-test"},
        })

    def beat(self) -> requests.Response:
        return self.post("heartbeat", {
            "instance_id": self.ids["instance_id"], "status": "ready", "reason": None, "model": "mock-echo",
            "sent_at": "2026-11-26T21:42:10.345678+00:00", "in_flight": 0, "engine": {}, "gpus": [], "host": {},
        })

    def list_instances(self) -> requests.Response:
        response = requests.get(f"{self.plane.url}/api/instances/", timeout=15,
                                headers={"Authorization": f"Token {self.ids['api_token']}"})
        self.answers.append(response.status_code)
        return response

    def healthy_in_a_row(self) -> bool:
        """Send until HEALTHY_IN_A_ROW heartbeats and listings in a row answered 200; False at the first that
        did not (the caller polls again)."""
        for _ in range(HEALTHY_IN_A_ROW):
            if self.beat().status_code != 200 or self.list_instances().status_code != 200:
                return False
        return True


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)


def test_a_postgresql_restart_is_503s_while_it_is_down_and_a_full_recovery_after(postgresql, control_plane):
    agent = Agent(control_plane)
    assert agent.register().status_code == 200
    assert agent.healthy_in_a_row()  # every web thread now keeps a connection

    postgresql.stop("fast")
    for _ in range(2 * WEB_THREADS):
        assert_unavailable(agent.beat())
        unavailable = agent.list_instances()
        assert_unavailable(unavailable)
        assert unavailable.json()["error"]["code"] == "unavailable"
    metrics = requests.get(f"{control_plane.url}/metrics", timeout=15)
    assert_unavailable(metrics)

    postgresql.start()
    wait_until(agent.healthy_in_a_row, timeout=RECONNECT_S, what="heartbeats and the API answering again")

    # A restart between two requests: every kept connection is broken; each is dropped and opened again.
    postgresql.stop("immediate")
    postgresql.start()
    wait_until(agent.healthy_in_a_row, timeout=RECONNECT_S, what="recovery from a crash between requests")

    assert set(agent.answers) <= {200, 503}, f"answers: {agent.answers}"
    log = control_plane.log("web")
    assert "Internal Server Error" not in log and "Service Unavailable" not in log  # one throttled line instead
    assert "database unavailable" in log

