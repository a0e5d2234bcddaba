"""A pool's whole life on the Mock cloud's process runtime (a real worker agent and vLLM simulator per
machine), driven through the router with the official openai client: asleep at zero, woken by a held
request, grown by sustained load, drained back to zero when the load stops, with no request lost.

The beat is played by a thread that runs the autoscaler, drain, termination, watchdog and lost-heartbeat sweeps
every TICK_S (what CELERY_BEAT_SCHEDULE runs every 10 s in production); everything else is the real code path.
A member whose agent is killed (from the Mock console's staff API) stays up at the Mock cloud, as on a real
one: its heartbeats stop, it is failed with HEARTBEAT_LOST and replaced, and no client request fails.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
import requests
from django.db import connections

from autoscaling.models import Pool
from autoscaling.services import autoscale_pools
from autoscaling.tests.factories import make_pool
from instances.draining import sweep_drains
from instances.models import Instance
from instances.status import ErrorCode, Status
from instances.sweeps import sweep_terminating, sweep_watchdog
from instances.tests.factories import mock_cloud, set_setting  # noqa: F401
from instances.lost_workers import sweep_lost_heartbeats
from monitoring.models import ActionLog
from providers import mock_process
from providers.models import MockServer
from router.asgi import RouterApp
from router.server import router_protocol
from router.tests.factories import client_key, openai_client, router_config, wait_for
from router.tests.servers import UvicornThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TICK_S = 0.5
TOKENS_PER_SECOND = 25  # each simulated stream then lasts max_tokens / 25 s
STREAM_TOKENS = 50
LOAD_CLIENTS = 6  # 3x the pool's target of 2 in flight per instance
WAIT_S = 90  # generous: two busy cores start agents and simulators
REQUEST_TIMEOUT_S = 120
LOST_GRACE_S = 10  # the smallest heartbeat_lost_grace_s the setting allows


class Beat:
    """Runs the autoscaler and the drain/termination sweeps every TICK_S until stopped."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beat", daemon=True)

    def _run(self):
        try:
            while not self._stop.wait(TICK_S):
                autoscale_pools()
                sweep_drains()
                sweep_terminating()
                sweep_watchdog()
                sweep_lost_heartbeats()
        finally:
            connections.close_all()  # this thread's own connection: the test database can then be dropped

    def start(self) -> "Beat":
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)


class LoadClients:
    """`count` clients each streaming completions back to back until stopped; every failure is kept."""

    def __init__(self, client, count: int):
        self.client, self.failures, self.completed = client, [], 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self):
        while not self._stop.is_set():
            try:
                stream = self.client.chat.completions.create(
                    model="mock-echo", messages=[{"role": "user", "content": "keep talking"}],
                    max_tokens=STREAM_TOKENS, stream=True,
                )
                finish = None
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finish = chunk.choices[0].finish_reason
                if finish is None:
                    raise AssertionError("the stream ended without a finish reason")
                with self._lock:
                    self.completed += 1
            except Exception as exc:  # every failure is what the test is about
                with self._lock:
                    self.failures.append(repr(exc))

    def start(self) -> "LoadClients":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        # Clients finish the stream they are in: a stop never cuts one off.
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S)


def count(pool, *statuses) -> int:
    return Instance.objects.filter(pool=pool, status__in=statuses).count()


@pytest.fixture
def cloud(mock_cloud, settings, live_server, tmp_path, monkeypatch):
    """Mock process runtime reporting to the live server, slow simulated engines, a router and a beat."""
    settings.INVENTIV_MOCK_RUNTIME = "process"
    settings.PUBLIC_URL = live_server.url
    settings.VAR_DIR = tmp_path
    settings.ROUTER_POOL_DIRECTORY = "autoscaling.selectors.pools_for_routing"
    settings.ROUTER_POOL_WAKE = "autoscaling.holds.report_held_requests"
    set_setting("heartbeat_interval_s", 1)
    monkeypatch.setenv("INVENTIV_SIM_TOKENS_PER_SECOND", str(TOKENS_PER_SECOND))
    app = RouterApp(router_config())
    router = UvicornThread(app, http=router_protocol(app)).start()
    try:
        yield router
    finally:
        router.stop()
        # Whatever a failed test left running is stopped: no agent or simulator outlives its test.
        for server in MockServer.objects.all():
            mock_process.ProcessRuntime().stop(server)


@pytest.fixture
def beat():
    running = Beat().start()
    yield running
    running.stop()


def test_a_pool_wakes_for_a_held_request_grows_with_load_and_drains_to_zero_without_losing_one(cloud, beat):
    router = cloud
    pool = make_pool(min_size=0, max_size=3, target_in_flight=2, scale_to_zero=True, scale_up_window_s=2,
                     scale_down_window_s=6, idle_period_s=6, drain_timeout_s=60, hold_timeout_s=WAIT_S)
    key = client_key()
    client = openai_client(router.url, key).with_options(timeout=REQUEST_TIMEOUT_S)
    wait_for(lambda: requests.get(f"{router.url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                                  timeout=5).status_code == 200, what="the router to load the key", timeout=WAIT_S)

    # Asleep at zero: the first request is held while a machine boots, then answered.
    answer = client.chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "wake up"}],
                                            max_tokens=5)
    assert answer.choices[0].message.content
    assert count(pool, Status.READY) == 1

    # Sustained load above the target grows the pool.
    load = LoadClients(client, LOAD_CLIENTS).start()
    try:
        wait_for(lambda: count(pool, Status.READY) >= 2, what="the pool to grow", timeout=WAIT_S)
        largest = count(pool, Status.READY, Status.PROVISIONING, Status.BOOTING, Status.STARTING)
    finally:
        load.stop()

    # The load stops: every member is drained, then terminated, and the pool sleeps at zero again.
    wait_for(lambda: count(pool, Status.READY, Status.DRAINING, Status.PROVISIONING, Status.BOOTING,
                           Status.STARTING, Status.TERMINATING) == 0, what="the pool to drain to zero", timeout=WAIT_S)

    assert load.failures == []
    assert load.completed > 0
    assert largest >= 2
    served = list(Instance.objects.filter(pool=pool, ready_at__isnull=False).values_list("pk", flat=True))
    drained = ActionLog.objects.filter(action_type="DRAIN_COMPLETE", instance_id__in=served).count()
    assert drained == len(served)  # every member that served left through a drain, none was cut off
    assert Pool.objects.get(pk=pool.pk).desired_size == 0


def test_a_member_whose_agent_is_killed_is_replaced_and_the_pool_keeps_its_minimum(cloud, beat):
    set_setting("heartbeat_lost_grace_s", LOST_GRACE_S)
    pool = make_pool(min_size=1, max_size=1, scale_to_zero=False)
    first = wait_for(lambda: Instance.objects.filter(pool=pool, status=Status.READY).first(), what="the first member",
                     timeout=WAIT_S)

    agent_pid = MockServer.objects.get(pk=first.provider_server_id).metadata["pid"]
    os.killpg(agent_pid, signal.SIGKILL)

    replacement = wait_for(lambda: Instance.objects.filter(pool=pool, status=Status.READY).exclude(pk=first.pk).first(),
                           what="a replacement member", timeout=LOST_GRACE_S + WAIT_S)
    first.refresh_from_db()
    assert (first.status, first.error_code) == (Status.TERMINATED, ErrorCode.HEARTBEAT_LOST)
    assert replacement.pool_id == pool.pk
    reasons = ActionLog.objects.filter(action_type="SCALE_DECISION", metadata__pool=pool.name).values_list(
        "metadata__reason", flat=True)
    assert any(reason.startswith("replace 1 lost (HEARTBEAT_LOST)") for reason in reasons)


def test_a_member_whose_agent_is_killed_under_load_is_lost_and_replaced_without_a_client_error(cloud, beat, api):
    router = cloud
    set_setting("heartbeat_lost_grace_s", LOST_GRACE_S)
    pool = make_pool(min_size=2, max_size=2, scale_to_zero=False)
    members = wait_for(lambda: list(Instance.objects.filter(pool=pool, status=Status.READY)) if
                       count(pool, Status.READY) == 2 else None, what="two ready members", timeout=WAIT_S)
    key = client_key()
    client = openai_client(router.url, key).with_options(timeout=REQUEST_TIMEOUT_S)
    wait_for(lambda: requests.get(f"{router.url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                                  timeout=5).status_code == 200, what="the router to load the key", timeout=WAIT_S)

    load = LoadClients(client, 2).start()
    try:
        wait_for(lambda: load.completed >= 2, what="the load to flow", timeout=WAIT_S)
        victim = members[0]
        killed = api.post(f"/api/mock/servers/{victim.provider_server_id}/kill-agent/")
        assert killed.status_code == 200
        assert (killed.json()["state"], killed.json()["agent_running"]) == ("running", False)
        replacement = wait_for(
            lambda: Instance.objects.filter(pool=pool, status=Status.READY).exclude(
                pk__in=[member.pk for member in members]).first(),
            what="a replacement member", timeout=LOST_GRACE_S + WAIT_S)
        served_before_stop = load.completed
    finally:
        load.stop()

    victim.refresh_from_db()
    assert (victim.status, victim.error_code) == (Status.TERMINATED, ErrorCode.HEARTBEAT_LOST)
    assert replacement.pool_id == pool.pk
    assert load.failures == []
    assert served_before_stop > 2
    reasons = ActionLog.objects.filter(action_type="SCALE_DECISION", metadata__pool=pool.name).values_list(
        "metadata__reason", flat=True)
    assert any(reason.startswith("replace 1 lost (HEARTBEAT_LOST)") for reason in reasons)
    assert ActionLog.objects.filter(action_type="MOCK_AGENT_KILL", metadata__source="api").count() == 1
