"""Fixtures for the worker agent: free ports, a stub control plane, agent processes."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker_agent.tests.stub_control_plane import StubControlPlane

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_TOKEN = "wt-secret-0123456789"
ENGINE_API_KEY = "ek-secret-9876543210"
HEARTBEAT_S = 0.2
WAIT_S = 15.0
POLL_S = 0.05
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = WAIT_S, message: str = "condition") -> object:
    """Poll until the predicate is truthy; bounded so that a broken agent fails the test instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class AgentProcess:
    """`python -m worker_agent` as a child process, its stderr in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.agent_port = int(env["INVENTIV_AGENT_PORT"])
        self.engine_port = int(env["INVENTIV_ENGINE_PORT"])
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker_agent"], cwd=REPO_ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def engine_pid(self) -> int | None:
        found = re.findall(r"engine started \(pid (\d+)\)", self.log())
        return int(found[-1]) if found else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        engine = self.engine_pid()
        if engine is not None:
            try:
                os.killpg(engine, signal.SIGKILL)  # only if the agent failed to stop it
            except ProcessLookupError:
                pass
        self._log.close()


@pytest.fixture
def control_plane() -> Iterator[StubControlPlane]:
    stub = StubControlPlane(token=WORKER_TOKEN, heartbeat_interval_s=HEARTBEAT_S)
    server = stub.serve()
    stub.url = server.url  # type: ignore[attr-defined]
    yield stub
    server.stop()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def start(control_plane_url: str, **overrides: str) -> AgentProcess:
        env = {key: value for key, value in os.environ.items() if not key.startswith("INVENTIV_")}
        env.update(
            INVENTIV_CONTROL_PLANE_URL=control_plane_url,
            INVENTIV_INSTANCE_ID="inst-test-1",
            INVENTIV_WORKER_TOKEN=WORKER_TOKEN,
            INVENTIV_MODEL="mock-echo",
            INVENTIV_ENGINE_API_KEY=ENGINE_API_KEY,
            INVENTIV_ENGINE_MODE="simulator",
            INVENTIV_ENGINE_HOST="127.0.0.1",
            INVENTIV_ENGINE_PORT=str(free_port()),
            INVENTIV_AGENT_HOST="127.0.0.1",
            INVENTIV_AGENT_PORT=str(free_port()),
            INVENTIV_HEARTBEAT_INTERVAL_S=str(HEARTBEAT_S),
            INVENTIV_ENGINE_STOP_GRACE_S="5",
        )
        env.update(overrides)
        agent = AgentProcess(env, tmp_path / f"agent-{len(agents)}.log")
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()
