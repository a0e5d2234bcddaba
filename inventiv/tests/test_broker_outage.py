"""A real Celery worker outlives Redis outages and goes on with new tasks once Redis is back.

The outages start while tasks are still running and unacknowledged (acks late): closing the lost connection
then tries to hand those messages back to the broker, the path on which Celery 5.7.0 stopped the worker for
good ("Unrecoverable error: AttributeError ... 'hostname'", see README "Broker outages"). The worker runs the
production pool (threads, 8 at once) against a `redis-server` of its own on a free port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from inventiv.tests.own_servers import OwnRedis, needs_redis_server, wait_until

pytestmark = [
    pytest.mark.slow,
    needs_redis_server(),
]

OUTAGE_S = 15
SHORT_OUTAGE_S = 2
HELD_TASKS = 4
# Long enough that the tasks are still running when Redis goes away right after they started.
HOLD_S = 3.0
WORKER_READY_S = 60
# Celery retries the broker every 2, 4, 6 ... up to 30 s: after a 15 s outage it is back within 30 s.
RESUMED_WITHIN_S = 60
MARK_TASK = "inventiv.tests.outage_tasks.mark_task"


class OutageWorker:
    def __init__(self, broker_url: str, folder: Path):
        self.log_path = folder / "worker.log"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "CELERY_BROKER_URL": broker_url, "INVENTIV_VAR_DIR": str(folder / "var"),
               "DATABASE_URL": f"sqlite:///{folder / 'worker.sqlite3'}", "SECRET_KEY": settings.SECRET_KEY,
               "CELERY_TASK_ALWAYS_EAGER": "false"}
        env.pop("REDIS_URL", None)
        self.process = subprocess.Popen(
            # The worker production runs (scripts/run.sh, docker-compose.yml), plus the test's task module.
            [sys.executable, "-m", "celery", "-A", "inventiv", "worker", "--pool=threads", "--concurrency=8",
             "--without-gossip", "--without-mingle", "--loglevel=INFO", "--include", "inventiv.tests.outage_tasks",
             "-n", "outage@%h"],
            cwd=settings.BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def redis_server(tmp_path):
    with OwnRedis.running(tmp_path) as server:
        yield server


@pytest.fixture
def worker(redis_server, tmp_path):
    started = OutageWorker(redis_server.url(), tmp_path)
    wait_until(lambda: " ready." in started.log() or not started.alive(), timeout=WORKER_READY_S,
               what="the worker to start")
    assert started.alive(), started.log()[-3000:]
    yield started
    started.stop()


def test_the_worker_survives_redis_outages_that_start_while_tasks_run_and_then_takes_new_tasks(
    redis_server, worker, tmp_path
):
    marks = tmp_path / "marks"
    marks.mkdir()

    def send(name: str, hold_s: float = 0.0) -> None:
        # A client of its own each time: connections opened before an outage would outlive the server.
        client = Celery("outage-test", broker=redis_server.url(), set_as_current=False)
        try:
            client.send_task(MARK_TASK, args=[str(marks), name, hold_s])
        finally:
            client.close()

    def outage(name: str, sig: signal.Signals, length_s: float) -> None:
        names = [f"{name}-{n}" for n in range(HELD_TASKS)]
        for held in names:
            send(held, HOLD_S)
        wait_until(lambda: all((marks / f"{held}.started").exists() for held in names), timeout=WORKER_READY_S,
                   what=f"the worker to start the {name} tasks")
        redis_server.stop(kill=sig == signal.SIGKILL)
        time.sleep(length_s)  # the outage itself
        assert worker.alive(), f"the worker exited during the {name} outage:\n{worker.log()[-4000:]}"
        redis_server.start()

        send(f"after-{name}")
        wait_until(lambda: (marks / f"after-{name}.done").exists() or not worker.alive(),
                   timeout=RESUMED_WITHIN_S, what=f"a task sent after the {name} outage to run")
        assert worker.alive(), f"the worker exited after the {name} outage:\n{worker.log()[-4000:]}"

    outage("killed", signal.SIGKILL, OUTAGE_S)
    outage("stopped", signal.SIGTERM, SHORT_OUTAGE_S)

    # The tasks that were running when Redis went away finish too (a task sent later may finish first).
    held = [marks / f"{name}-{n}.done" for name in ("killed", "stopped") for n in range(HELD_TASKS)]
    wait_until(lambda: all(path.exists() for path in held), timeout=RESUMED_WITHIN_S,
               what="the tasks running during the outages to finish")
    assert "Unrecoverable error" not in worker.log()
