"""The heartbeat's ASGI fast path answers exactly as the Django view does, through the real entry point."""

import json

import pytest
import requests

from instances.status import Status
from instances.tests.factories import fresh, mock_cloud  # noqa: F401 (fixtures)
from instances.tests.worker_factories import heartbeat_payload, register, worker_instance
from monitoring.models import HeartbeatSample
from router.tests.servers import UvicornThread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server():
    from inventiv.asgi import HttpProtocol, application, close_database_connections

    running = UvicornThread(application, http=HttpProtocol).start()
    yield running
    running.stop()
    close_database_connections()


def beat(server, payload, *, token, method="POST"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{server.url}/api/worker/heartbeat", data=json.dumps(payload),
                            headers=headers, timeout=10)


def test_a_ready_heartbeat_through_the_fast_path_makes_the_instance_ready(mock_cloud, server):
    instance, token = worker_instance(status=Status.STARTING)
    assert register(instance, token).status_code == 200

    answer = beat(server, heartbeat_payload(instance), token=token)

    assert answer.status_code == 200
    assert answer.json()["action"] == "serve"
    assert fresh(instance).status == Status.READY
    assert HeartbeatSample.objects.filter(instance_id=instance.pk).count() == 1


def test_the_fast_path_refuses_bad_tokens_bad_bodies_and_other_methods(mock_cloud, server):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)

    assert beat(server, heartbeat_payload(instance), token="not-the-token").status_code == 401
    assert beat(server, heartbeat_payload(instance), token=None).status_code == 401
    invalid = beat(server, heartbeat_payload(instance, in_flight=-1), token=token)
    assert invalid.status_code == 400 and "in_flight" in invalid.json()["fields"]
    assert beat(server, heartbeat_payload(instance), token=token, method="GET").status_code == 405
    assert fresh(instance).status == Status.STARTING
    assert not HeartbeatSample.objects.filter(instance_id=instance.pk).exists()
