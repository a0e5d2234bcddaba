"""Two router processes and a Redis of the test's own: one set of limits for both, changes pushed to both,
and a Redis outage that degrades to per-process limits without an error.

Each router is `inventiv.asgi:application` under uvicorn in its own process, on the test database (a
file for SQLite, so other processes can share it) and this process's SECRET_KEY (the same var
directory), with ROUTER_REDIS_URL pointing at a `redis-server` started for the module.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection

from inventiv.tests.own_servers import OwnRedis, needs_redis_server
from router.models import ApiKey
from router.services import revoke_api_key
from router.tests.factories import MODEL, client_key, wait_for
from router.tests.servers import bound_socket

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_redis_server(),
]

START_TIMEOUT_S = 30.0
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hello replicas"}], "max_tokens": 2}
REQUESTS_PER_MINUTE = 30
OUTAGE_WARNING = "Redis does not answer"


class RouterProcess:
    def __init__(self, env: dict, log_path: Path) -> None:
        with bound_socket() as sock:
            self.port = sock.getsockname()[1]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "inventiv.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--log-level", "warning"],
            cwd=settings.BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        def listening() -> bool:
            assert self.process.poll() is None, f"the router exited:\n{self.log()[-3000:]}"
            try:
                return requests.get(f"{self.url}/v1/models", timeout=1).status_code == 401
            except requests.ConnectionError:
                return False

        wait_for(listening, timeout=START_TIMEOUT_S, what="the router process to serve")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def redis_server(tmp_path):
    with OwnRedis.running(tmp_path) as server:
        yield server


@pytest.fixture
def replicas(redis_server, settings, tmp_path):
    """Two router processes sharing `redis_server`; this process announces changes to the same Redis."""
    prefix = f"inventiv-test:{uuid.uuid4().hex[:12]}:"
    settings.ROUTER_REDIS_URL, settings.ROUTER_REDIS_PREFIX = redis_server.url(), prefix
    env = {**os.environ, "DATABASE_URL": _database_url(), "INVENTIV_VAR_DIR": str(settings.VAR_DIR),
           "ROUTER_REDIS_URL": redis_server.url(), "ROUTER_REDIS_PREFIX": prefix, "DEBUG": "0",
           "LOG_LEVEL": "WARNING", "REDIS_URL": "", "CELERY_BROKER_URL": "memory://"}
    routers = [RouterProcess(env, tmp_path / f"router-{index}.log") for index in range(2)]
    try:
        for router in routers:
            router.wait_ready()
        yield routers
    finally:
        for router in routers:
            router.stop()


def chat(router: RouterProcess, key: str) -> requests.Response:
    return requests.post(f"{router.url}/v1/chat/completions", json=HELLO, timeout=10,
                         headers={"Authorization": f"Bearer {key}"})


def test_a_key_limited_to_30_requests_a_minute_gets_at_most_31_of_60_across_two_routers(engines, replicas):
    engines()
    key = client_key(requests_per_minute=REQUESTS_PER_MINUTE)  # both routers know it when this returns
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda index: chat(replicas[index % 2], key).status_code, range(60)))
    assert statuses.count(200) in (REQUESTS_PER_MINUTE, REQUESTS_PER_MINUTE + 1)
    assert statuses.count(429) == 60 - statuses.count(200)


def test_a_revoked_key_is_refused_by_both_routers_as_soon_as_the_revoke_returns(engines, replicas, caplog):
    engines()
    key = client_key()
    assert [chat(router, key).status_code for router in replicas] == [200, 200]

    with caplog.at_level(logging.WARNING, logger="router.changes"):
        started = time.monotonic()
        revoke_api_key(ApiKey.objects.get())
        refused = [chat(router, key).status_code for router in replicas]
        elapsed = time.monotonic() - started

    assert refused == [401, 401]
    assert not caplog.records, "every router applied the revocation before the revoke returned"
    print(f"revoke to both refusing: {elapsed * 1000:.0f} ms")


def test_a_drained_instance_gets_no_new_request_from_either_router_once_the_drain_returns(
        engines, replicas, api):
    leaving, staying = engines(), engines()
    key = client_key()
    answers: list[tuple[float, int, str]] = []  # (sent at, status, instance) of every request
    stop = threading.Event()

    def load(router: RouterProcess) -> None:
        while not stop.is_set():
            sent_at = time.monotonic()
            answer = chat(router, key)
            answers.append((sent_at, answer.status_code, answer.headers.get("x-inventiv-instance", "")))

    workers = [threading.Thread(target=load, args=(router,)) for router in replicas for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: {instance for _, _, instance in answers} == {leaving.id, staying.id},
                 what="both instances to serve")
        answer = api.post(f"/api/instances/{leaving.id}/drain/", {"reason": "scale-out test"}, format="json")
        drained_at = time.monotonic()
        assert answer.status_code == 202
        wait_for(lambda: sum(sent > drained_at for sent, _, _ in answers) >= 40, what="requests after the drain")
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
    assert {status for _, status, _ in answers} == {200}
    assert {instance for sent, _, instance in answers if sent > drained_at} == {staying.id}


def test_a_redis_outage_leaves_limits_per_router_with_one_log_line_and_no_error(engines, replicas, redis_server):
    engines()
    key = client_key(requests_per_minute=REQUESTS_PER_MINUTE)
    assert {chat(router, key).status_code for router in replicas} == {200}

    redis_server.stop()
    statuses = [chat(replicas[index % 2], key).status_code for index in range(80)]

    # Each router now counts alone, from zero: 30 a minute each.
    assert statuses.count(200) == 2 * REQUESTS_PER_MINUTE
    assert set(statuses) == {200, 429}
    for router in replicas:
        assert router.log().count(OUTAGE_WARNING) == 1
