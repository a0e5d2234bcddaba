"""A database that cannot be reached is a 503 with Retry-After from every endpoint, shaped for its client.

The edge faked here is the driver's connect: every new cursor fails as psycopg does when PostgreSQL is down.
A real PostgreSQL stopped and started again is inventiv/tests/test_postgresql_restart.py.
"""

import json

import pytest
import requests
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import RequestFactory

from instances.status import Status
from instances.tests.factories import mock_cloud  # noqa: F401 (fixture)
from instances.tests.worker_factories import heartbeat_payload, register, worker_instance
from inventiv.unavailable import RETRY_AFTER_S, server_error
from router.tests.servers import UvicornThread

REFUSED = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused'


class Database:
    """Up, or refusing every connection (every cursor asks for one), in every thread."""

    def __init__(self):
        self._ensure_connection = BaseDatabaseWrapper.ensure_connection

    def go_down(self) -> None:
        def refuse(wrapper):
            raise OperationalError(REFUSED)

        BaseDatabaseWrapper.ensure_connection = refuse

    def come_back(self) -> None:
        BaseDatabaseWrapper.ensure_connection = self._ensure_connection


@pytest.fixture
def database(db):
    # Restored before the test database is torn down (this fixture needs `db`, so it ends first).
    database = Database()
    yield database
    database.come_back()


def assert_retry_later(response) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_S)


def test_the_api_answers_503_unavailable_in_its_error_shape(api, database):
    database.go_down()

    response = api.get("/api/instances/")

    assert_retry_later(response)
    assert response.json()["error"]["code"] == "unavailable"
    database.come_back()
    assert api.get("/api/instances/").status_code == 200


def test_a_page_answers_a_503_page_that_needs_no_database(client, admin_user, database):
    client.force_login(admin_user)
    database.go_down()

    response = client.get("/instances/", HTTP_ACCEPT="text/html")

    assert_retry_later(response)
    assert "Temporarily unavailable" in response.content.decode()


def test_metrics_answer_a_plain_503(client, database):
    database.go_down()

    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert_retry_later(response)
    assert response["Content-Type"].startswith("text/plain")


def test_a_worker_registration_answers_503_in_the_worker_protocol(mock_cloud, database):
    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)
    database.go_down()

    response = register(instance, token)

    assert_retry_later(response)
    assert response.json() == {"error": "database unavailable, retry later"}


def test_an_error_from_a_middleware_is_a_503_too():
    request = RequestFactory().get("/api/instances/")
    try:
        raise OperationalError(REFUSED)
    except OperationalError:
        response = server_error(request)

    assert_retry_later(response)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_fast_path_answers_503_then_200_once_the_database_is_back(mock_cloud, database):
    from inventiv.asgi import application, close_database_connections

    instance, token = worker_instance(status=Status.STARTING)
    register(instance, token)
    server = UvicornThread(application).start()
    beat = lambda: requests.post(f"{server.url}/api/worker/heartbeat",  # noqa: E731
                                 data=json.dumps(heartbeat_payload(instance)),
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)
    try:
        database.go_down()
        refused = beat()
        assert refused.status_code == 503 and refused.headers["Retry-After"] == str(RETRY_AFTER_S)
        database.come_back()
        assert beat().status_code == 200
    finally:
        server.stop()
        close_database_connections()
