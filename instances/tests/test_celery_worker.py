"""Real Celery workers against the test database: a worker killed mid-provision, and sweeps side by side.

Needs PostgreSQL (several processes share the test database) and a broker: the configured one (Redis when
REDIS_URL is set), otherwise Celery's filesystem transport in a temporary folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from instances.models import Instance
from instances.status import Status
from instances.sweeps import sweep_lost_provisions
from instances.tests.factories import (  # noqa: F401 (fixtures)
    fresh,
    make_instance,
    mock_cloud,
    request_mock,
    servers_of,
    set_setting,
)
from monitoring.models import ActionLog
from providers.mock import inject_fault
from providers.models import MockServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="real workers share the test database with this process: needs PostgreSQL (set DATABASE_URL)",
    ),
]

WORKER_READY_S = 60
KILL_LANDS_WITHIN_S = 30
RECOVERY_S = 60
SLOW_CREATE_S = 60  # far longer than the test: the kill always lands inside the create call
REQUEUE_AFTER_S = 5  # the lowest provision_requeue_after_s allowed
SIDE_BY_SIDE_INSTANCES = 240
POLL_S = 0.2


class Worker:
    def __init__(self, name: str, env: dict, log_path: Path):
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            # The pool production runs (scripts/run.sh, docker-compose.yml), with two tasks at once.
            [sys.executable, "-m", "celery", "-A", "inventiv", "worker", "--pool=threads", "--concurrency=2",
             "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"],
            cwd=settings.BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_S
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.process.poll() is not None:
                break
            time.sleep(POLL_S)
        raise AssertionError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def _database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def broker(tmp_path):
    """Tasks leave this process for a real broker (overriding the autouse eager mode, which runs first);
    returns the environment workers need to reach it."""
    from inventiv.celery import app

    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options", "task_always_eager")}
    env = {}
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        url, options = settings.CELERY_BROKER_URL, saved["broker_transport_options"]
        env["CELERY_BROKER_URL"] = url
    else:
        var_dir = tmp_path / "var"
        for sub in ("queue", "processed", "control"):
            (var_dir / "broker" / sub).mkdir(parents=True)
        url = "filesystem://"
        options = {"data_folder_in": str(var_dir / "broker" / "queue"),
                   "data_folder_out": str(var_dir / "broker" / "queue"),
                   "processed_folder": str(var_dir / "broker" / "processed"),
                   "control_folder": str(var_dir / "broker" / "control"), "store_processed": False}
        env.update(CELERY_BROKER_URL=url, INVENTIV_VAR_DIR=str(var_dir))
    app.conf.update(broker_url=url, broker_transport_options=options, task_always_eager=False)
    _drop_connections(app)
    app.control.purge()
    yield env
    app.conf.update(saved)
    _drop_connections(app)


def _drop_connections(app) -> None:
    # Celery keeps its connection and producer pools for the broker it first used; a changed broker needs
    # new ones (what Celery itself does after a fork).
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def start_worker(broker, tmp_path):
    workers: list[Worker] = []
    env = {**os.environ, **broker, "DATABASE_URL": _database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "CELERY_TASK_ALWAYS_EAGER": "false", "DJANGO_SETTINGS_MODULE": "inventiv.settings"}
    env.pop("TEST_DATABASE_NAME", None)

    def start(name: str) -> Worker:
        worker = Worker(name, env, tmp_path / f"{name}.log")
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _wait_for(condition, *, timeout_s: float, every=None, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if every is not None:
            every()
        if condition():
            return
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_inside_the_create_call_leaves_one_server_and_the_instance_gets_ready(
    mock_cloud, start_worker
):
    set_setting("provision_requeue_after_s", REQUEUE_AFTER_S)
    inject_fault("slow_create", delay_s=SLOW_CREATE_S)
    first = start_worker("first")

    instance = request_mock()
    _wait_for(lambda: servers_of(instance).exists(), timeout_s=KILL_LANDS_WITHIN_S,
              what="the first worker to create the server")
    first.kill()
    assert fresh(instance).provider_server_id == ""  # killed before the id was recorded

    start_worker("second")
    _wait_for(lambda: fresh(instance).status == Status.READY, timeout_s=RECOVERY_S, every=sweep_lost_provisions,
              what="the re-queued provision to finish")

    instance = fresh(instance)
    assert MockServer.objects.count() == 1
    assert instance.provider_server_id == str(servers_of(instance).get().pk)
    assert instance.requeue_count >= 1
    assert ActionLog.objects.filter(instance_id=instance.pk, action_type="REQUEUE_PROVISION").exists()


def test_two_workers_sweeping_side_by_side_never_work_on_the_same_instance(mock_cloud, start_worker):
    from instances.tasks import sweep_startup_health_task

    instances = [make_instance(status=Status.BOOTING) for _ in range(SIDE_BY_SIDE_INSTANCES)]
    workers = [start_worker("left"), start_worker("right")]

    for _ in range(2 * len(workers)):
        sweep_startup_health_task.delay()
    _wait_for(lambda: not Instance.objects.filter(status=Status.BOOTING).exists(), timeout_s=RECOVERY_S,
              what="the sweeps to check every instance")

    ids = [instance.pk for instance in instances]
    for action_type in ("HEALTH_CHECK", "INSTANCE_READY"):
        per_instance = {pk: 0 for pk in ids}
        for pk in ActionLog.objects.filter(action_type=action_type).values_list("instance_id", flat=True):
            per_instance[pk] += 1
        assert set(per_instance.values()) == {1}, f"{action_type} logged more than once for an instance"
    assert Instance.objects.filter(pk__in=ids, status=Status.READY).count() == SIDE_BY_SIDE_INSTANCES
    # What each sweep task reported: together they checked every instance exactly once.
    _wait_for(lambda: sum(_swept(worker) for worker in workers) == SIDE_BY_SIDE_INSTANCES, timeout_s=10,
              what="the workers to log their sweep results")


def _swept(worker: Worker) -> int:
    pattern = r"sweep_startup_health_task\[[^\]]+\] succeeded in [0-9.e-]+s: (\d+)"
    return sum(int(count) for count in re.findall(pattern, worker.log()))
