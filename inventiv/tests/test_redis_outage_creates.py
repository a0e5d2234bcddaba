"""Acceptance: Redis (the broker) killed for 15 s while instances are requested through the API.

Every create is answered 202 (the request is committed; `"enqueued": false` while Redis is away), the Celery
worker and beat outlive the outage, and every instance requested, before, during and after it, reaches
`ready` once the beat sweeps re-queue what could not be enqueued. Real PostgreSQL and Redis of the test's own
(own_servers.py), the control plane's processes as production runs them (uvicorn, Celery worker on threads,
beat).
"""

import json
import time

import pytest
import requests

from inventiv.tests.own_servers import (
    ControlPlane,
    OwnPostgres,
    OwnRedis,
    needs_postgresql_binaries,
    needs_redis_server,
    wait_until,
)

pytestmark = [pytest.mark.slow, needs_postgresql_binaries(), needs_redis_server(), pytest.mark.timeout(600)]

OUTAGE_S = 15
CREATE_EVERY_S = 2
# The worker retries Redis every 2, 4, 6 ... s up to 30 s, beat sweeps every 10 s, a lost provision is
# re-queued 5 s after the request (the lowest provision_requeue_after_s): all ready well within this.
ALL_READY_S = 180
MOCK_REQUEST = {"provider": "mock", "zone": "mock-eu-1", "instance_type": "MOCK-GPU-S", "model": "mock-echo"}
SETUP = """
import json
from django.contrib.auth import get_user_model
from knox.models import AuthToken
from catalog.models import RuntimeSetting
from catalog.runtime_settings import update_setting
for key, value in {"provision_requeue_after_s": 5, "mock_boot_delay_s": 0, "mock_deletion_delay_s": 0}.items():
    update_setting(RuntimeSetting.objects.get(key=key), value=value)
user = get_user_model().objects.create_superuser("ops", "ops@example.com", "correct-horse-battery")
print(json.dumps({"api_token": AuthToken.objects.create(user, expiry=None)[1]}))
"""


@pytest.fixture
def postgresql():
    with OwnPostgres.running("inventiv") as cluster:
        yield cluster


@pytest.fixture
def redis_server(tmp_path):
    with OwnRedis.running(tmp_path) as server:
        yield server


@pytest.fixture
def control_plane(postgresql, redis_server, tmp_path):
    plane = ControlPlane(tmp_path, database_url=postgresql.url("inventiv"), redis_url=redis_server.url(6),
                         INVENTIV_MOCK_RUNTIME="none", CELERY_TASK_ALWAYS_EAGER="false")
    plane.manage("migrate", "--noinput")
    plane.manage("loaddata", "catalog")
    plane.token = json.loads(plane.manage("shell", "-c", SETUP).strip().splitlines()[-1])["api_token"]
    plane.url = plane.web(threads=4)
    plane.worker = plane.spawn("worker", "-m", "celery", "-A", "inventiv", "worker", "--pool=threads",
                               "--concurrency=8", "--without-gossip", "--without-mingle", "--loglevel=INFO",
                               "-n", "outage@%h")
    plane.beat = plane.spawn("beat", "-m", "celery", "-A", "inventiv", "beat", "--loglevel=INFO",
                             "--schedule", str(tmp_path / "celerybeat-schedule"))
    wait_until(lambda: " ready." in plane.log("worker"), timeout=120, what="the Celery worker")
    yield plane
    plane.stop()


class Operator:
    def __init__(self, plane: ControlPlane):
        self.plane = plane
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {plane.token}"
        self.answers: list[tuple[int, bool | None]] = []
        self.ids: list[str] = []

    def create(self) -> dict:
        response = self.session.post(f"{self.plane.url}/api/instances/", json=MOCK_REQUEST, timeout=30)
        body = response.json()
        self.answers.append((response.status_code, body.get("enqueued")))
        assert response.status_code == 202, (response.status_code, body)
        self.ids.append(body["id"])
        return body

    def statuses(self) -> dict[str, str]:
        statuses = {}
        for instance_id in self.ids:
            response = self.session.get(f"{self.plane.url}/api/instances/{instance_id}/", timeout=30)
            assert response.status_code == 200, response.text
            statuses[instance_id] = response.json()["status"]
        return statuses

    def all_ready(self) -> bool:
        statuses = self.statuses()
        return all(statuses.get(instance_id) == "ready" for instance_id in self.ids)


def test_creates_during_a_15_s_redis_outage_are_accepted_and_all_become_ready(redis_server, control_plane):
    operator = Operator(control_plane)
    assert operator.create()["enqueued"] is True

    redis_server.stop(kill=True)
    outage_ends = time.monotonic() + OUTAGE_S
    while time.monotonic() < outage_ends:
        body = operator.create()
        assert body["enqueued"] is False and "lost-provisions sweep" in body["note"]
        time.sleep(CREATE_EVERY_S)
    assert control_plane.worker.poll() is None, control_plane.log("worker")[-4000:]
    redis_server.start()
    operator.create()

    wait_until(operator.all_ready, timeout=ALL_READY_S,
               what=f"every instance ready: {operator.statuses()}, worker log:\n{control_plane.log('worker')[-3000:]}")
    assert control_plane.worker.poll() is None and control_plane.beat.poll() is None
    assert all(status == 202 for status, _ in operator.answers), operator.answers
    assert sum(1 for _, enqueued in operator.answers if enqueued is False) >= OUTAGE_S // CREATE_EVERY_S - 1
    assert "Unrecoverable error" not in control_plane.log("worker")

