"""The Mock cloud's `process` runtime: each Mock machine is a real worker agent.

Powering a server on starts `python -m worker_agent` in simulator mode (the agent starts the
vLLM-protocol simulator itself) on two free loopback ports, detached in its own session, its output in
var/mock/<server id>/agent.log. It reports to the control plane at INVENTIV_CONTROL_PLANE_URL as a
machine of a real cloud would, so provisioning, heartbeats, readiness, routing and draining all run on
one laptop.

What was started is written in the server's metadata (pid, the process's start time, ports, log file),
so any process (the Celery worker that started it, the web server, a test) can check and stop it. The
system reuses pids: a pid is taken as the agent only while its start time is the recorded one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
from django.conf import settings

from providers.base import ProviderError
from providers.mock import MockOperationError, MockRuntime
from providers.models import MOCK_PUBLIC_IP, MockServer

# The directory that holds the `worker_agent` package, so `python -m worker_agent` finds it.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
# From the environment of whoever starts the agent, only what a process needs to run: never the control
# plane's own secrets (database URL, SECRET_KEY...).
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
# The simulator's knobs (INVENTIV_SIM_TTFT_S, INVENTIV_SIM_TOKENS_PER_SECOND, ...) pass through too, so an
# operator or a test can make the Mock machines' engines as slow as real ones.
SIMULATOR_ENV_PREFIX = "INVENTIV_SIM_"
# SIGTERM to the agent and the engine, then SIGKILL after this long.
STOP_GRACE_S = 10
# What the agent gives its engine between SIGTERM and SIGKILL: the simulator exits at once on SIGTERM.
AGENT_ENGINE_STOP_GRACE_S = 5
POLL_S = 0.05
# Start times are read from /proc in clock ticks: the same process always reads the same, within rounding.
START_TIME_TOLERANCE_S = 0.05
# The agent logs each engine it starts; its engine leads its own session, outside the agent's group.
ENGINE_STARTED = re.compile(rb"engine started \(pid (\d+)\)")
SIMULATOR_MODULE = "worker_agent.simulator"

# Agents this process started, so their exit status is collected (no zombies) as soon as it is asked for.
_children: dict[int, subprocess.Popen] = {}


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind((MOCK_PUBLIC_IP, 0))
        return sock.getsockname()[1]


class ProcessRuntime(MockRuntime):
    name = "process"

    def start(self, server: MockServer) -> dict:
        agent_port, engine_port = free_loopback_port(), free_loopback_port()
        folder = Path(settings.VAR_DIR) / "mock" / str(server.pk)
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / "agent.log"
        env = {name: value for name, value in os.environ.items()
               if name in INHERITED_ENV or name.startswith(SIMULATOR_ENV_PREFIX)}
        env.update({name: str(value) for name, value in server.runtime_env.items()})
        env.update(
            INVENTIV_ENGINE_MODE="simulator",
            INVENTIV_AGENT_HOST=MOCK_PUBLIC_IP,
            INVENTIV_AGENT_PORT=str(agent_port),
            INVENTIV_ENGINE_HOST=MOCK_PUBLIC_IP,
            INVENTIV_ENGINE_PORT=str(engine_port),
            INVENTIV_ENGINE_STOP_GRACE_S=str(AGENT_ENGINE_STOP_GRACE_S),
        )
        try:
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "worker_agent"], cwd=PACKAGE_PARENT, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        except OSError as exc:
            raise ProviderError(f"Mock cloud: the worker agent of {server.pk} could not start: {exc}") from None
        _children[process.pid] = process
        return {
            "runtime": self.name,
            "pid": process.pid,
            "pid_started_at": psutil.Process(process.pid).create_time(),
            "agent_port": agent_port,
            "engine_port": engine_port,
            "log": str(log_path),
        }

    def agent_running(self, server: MockServer) -> bool | None:
        return agent_process(server.metadata) is not None if "pid" in server.metadata else None

    def kill_agent(self, server: MockServer) -> None:
        """SIGKILL the agent's process group. The engine leads a session of its own and keeps serving, and
        the machine stays up: only the heartbeats stop (README, "The Mock cloud")."""
        agent = agent_process(server.metadata)
        if agent is None:
            raise MockOperationError(f"the worker agent of Mock server {server.pk} is not running")
        _signal_groups([agent], signal.SIGKILL)
        _wait_gone([agent], STOP_GRACE_S)

    def crash_engine(self, server: MockServer) -> None:
        """SIGKILL the engine (every simulator of this server): its agent sees it exit and restarts it."""
        port = server.metadata.get("engine_port")
        engines = [process for process in running_processes(server.metadata)
                   if _engine_process(process.pid, port) is not None]
        if not engines:
            raise MockOperationError(f"the engine of Mock server {server.pk} is not running")
        _signal_groups(engines, signal.SIGKILL)
        _wait_gone(engines, STOP_GRACE_S)

    def stop(self, server: MockServer) -> None:
        """SIGTERM the agent's and its engines' process groups, SIGKILL what is left after STOP_GRACE_S."""
        if "pid" not in server.metadata:
            return
        targets = running_processes(server.metadata)
        _signal_groups(targets, signal.SIGTERM)
        left = _wait_gone(targets, STOP_GRACE_S)
        if left:
            _signal_groups(left, signal.SIGKILL)
            _wait_gone(left, STOP_GRACE_S)


def agent_process(metadata: dict) -> psutil.Process | None:
    """The server's agent process while it runs (None once it exited, even as an unreaped zombie)."""
    pid, started_at = metadata.get("pid"), metadata.get("pid_started_at")
    if not isinstance(pid, int) or not isinstance(started_at, (int, float)):
        return None
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started_at) > START_TIME_TOLERANCE_S:
            return None  # the pid now belongs to another process
    except psutil.Error:
        _reap(pid)
        return None
    return process if _running(process) else None


def running_processes(metadata: dict) -> list[psutil.Process]:
    """The agent and every engine it started that still run: its children while it lives, and the
    engines its log names (an engine outlives an agent that was killed)."""
    found: dict[int, psutil.Process] = {}
    agent = agent_process(metadata)
    if agent is not None:
        found[agent.pid] = agent
        try:
            found.update({child.pid: child for child in agent.children(recursive=True)})
        except psutil.Error:
            pass
    for pid in _logged_engine_pids(metadata.get("log")):
        if pid not in found:
            engine = _engine_process(pid, metadata.get("engine_port"))
            if engine is not None:
                found[pid] = engine
    return [process for process in found.values() if _running(process)]


def _logged_engine_pids(log_path: str | None) -> list[int]:
    if not log_path:
        return []
    try:
        text = Path(log_path).read_bytes()
    except OSError:
        return []
    return [int(pid) for pid in ENGINE_STARTED.findall(text)]


def _engine_process(pid: int, engine_port) -> psutil.Process | None:
    """The process `pid` if it is this server's simulator (its command line names the module and port)."""
    try:
        process = psutil.Process(pid)
        command = process.cmdline()
    except psutil.Error:
        return None
    if SIMULATOR_MODULE not in command or str(engine_port) not in command:
        return None
    return process


def _running(process: psutil.Process) -> bool:
    try:
        # is_running() also says False once the pid belongs to another process; a zombie has exited.
        if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.Error:
        pass
    _reap(process.pid)
    return False


def _reap(pid: int) -> None:
    """Collect the exit status of an agent this process started (others are reaped by their parent)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)  # worker threads may reap the same agent at once


def _signal_groups(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        try:
            # The agent and each engine lead their own session: the group takes any helper they started.
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        except (ProcessLookupError, psutil.Error):
            pass


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until every process exited (bounded); return those still running."""
    deadline = time.monotonic() + timeout_s
    left = [process for process in processes if _running(process)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL_S)
        left = [process for process in left if _running(process)]
    return left
