"""The join of a host the operator runs: the token exchanged once, the identity kept in a 0600 state file
and read back on every later start; refusals stop the agent, an absent control plane is waited out."""

import asyncio
import os
import stat

import pytest

from worker_agent.backoff import Backoff
from worker_agent.config import load_config
from worker_agent.joining import STATE_FILE, JoinFailed, joined, read_identity
from worker_agent.tests.conftest import HEARTBEAT_S, WORKER_TOKEN, free_port, wait_for
from worker_agent.tests.stub_control_plane import StubControlPlane

JOIN_TOKEN = "inv-join-0123456789abcdef"
FAST = Backoff(0.01, 0.05)


def config_for(url: str, state_dir, **env):
    return load_config([], {"INVENTIV_CONTROL_PLANE_URL": url, "INVENTIV_JOIN_TOKEN": JOIN_TOKEN,
                            "INVENTIV_MODEL": "mock-echo", "INVENTIV_ENGINE_API_KEY": "ek-operator-123",
                            "INVENTIV_ENGINE_PORT": "8001", "INVENTIV_AGENT_STATE_DIR": str(state_dir), **env})


@pytest.fixture
def joinable(control_plane):
    control_plane.join_token = JOIN_TOKEN
    return control_plane


def test_the_join_token_is_exchanged_once_and_the_identity_kept_readable_by_the_agent_only(joinable, tmp_path):
    state = tmp_path / "state"
    config = config_for(joinable.url, state)

    first = asyncio.run(joined(config, backoff=FAST))
    again = asyncio.run(joined(config, backoff=FAST))  # a restart: the state file, no second join

    assert (first.instance_id, first.worker_token) == ("inst-joined-1", WORKER_TOKEN)
    assert (again.instance_id, again.worker_token) == ("inst-joined-1", WORKER_TOKEN)
    assert len(joinable.joins) == 1
    assert joinable.joins[0] == {"join_token": JOIN_TOKEN, "model": "mock-echo", "engine_port": 8001,
                                 "engine_api_key": "ek-operator-123"}
    assert stat.S_IMODE(os.stat(state / STATE_FILE).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert [name for name in os.listdir(state)] == [STATE_FILE]  # no temporary file left behind


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_refused_join_stops_the_agent_and_keeps_nothing(joinable, tmp_path, status):
    joinable.join_failures = [status]

    with pytest.raises(JoinFailed, match=str(status)):
        asyncio.run(joined(config_for(joinable.url, tmp_path), backoff=FAST))

    assert not (tmp_path / STATE_FILE).exists()


def test_a_control_plane_away_or_not_ready_is_waited_out(joinable, tmp_path):
    joinable.join_failures = [503, 409, 502]

    config = asyncio.run(joined(config_for(joinable.url, tmp_path), backoff=FAST))

    assert config.worker_token == WORKER_TOKEN and len(joinable.joins) == 4


def test_a_control_plane_that_is_not_there_yet_is_waited_for(tmp_path):
    port = free_port()
    stub = StubControlPlane(token=WORKER_TOKEN, heartbeat_interval_s=HEARTBEAT_S)
    stub.join_token = JOIN_TOKEN

    async def join_while_it_starts():
        task = asyncio.create_task(joined(config_for(f"http://127.0.0.1:{port}", tmp_path), backoff=FAST))
        await asyncio.sleep(0.2)
        assert not task.done()  # nothing answers yet: still asking
        server = await asyncio.to_thread(stub.serve, port)
        try:
            return await asyncio.wait_for(task, 15)
        finally:
            await asyncio.to_thread(server.stop)

    assert asyncio.run(join_while_it_starts()).instance_id == "inst-joined-1"


def test_a_state_file_that_cannot_be_read_stops_the_agent(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(JoinFailed, match="cannot be read"):
        read_identity(config_for("http://127.0.0.1:1", tmp_path))
    (tmp_path / STATE_FILE).write_text('{"instance_id": ""}')
    with pytest.raises(JoinFailed, match="does not hold"):
        read_identity(config_for("http://127.0.0.1:1", tmp_path))


@pytest.mark.slow
def test_the_agent_process_joins_registers_as_its_instance_and_never_logs_a_token(joinable, start_agent, tmp_path):
    state = tmp_path / "agent-state"
    overrides = {"INVENTIV_INSTANCE_ID": "", "INVENTIV_WORKER_TOKEN": "", "INVENTIV_JOIN_TOKEN": JOIN_TOKEN,
                 "INVENTIV_AGENT_STATE_DIR": str(state)}
    agent = start_agent(joinable.url, **overrides)

    wait_for(lambda: "ready" in joinable.statuses(), message="a ready heartbeat after the join")
    agent.stop()
    restarted = start_agent(joinable.url, **overrides)
    wait_for(lambda: len(joinable.registrations) >= 2, message="the restarted agent's registration")
    restarted.stop()

    assert [r["instance_id"] for r in joinable.registrations[:2]] == ["inst-joined-1", "inst-joined-1"]
    assert len(joinable.joins) == 1  # the restart used the state file
    for log in (agent.log(), restarted.log()):
        assert JOIN_TOKEN not in log and WORKER_TOKEN not in log
    assert "joined the control plane as instance inst-joined-1" in agent.log()


def test_an_agent_refused_at_join_exits_with_its_own_code(joinable, start_agent, tmp_path):
    agent = start_agent(joinable.url, INVENTIV_INSTANCE_ID="", INVENTIV_WORKER_TOKEN="",
                        INVENTIV_JOIN_TOKEN="inv-join-wrong", INVENTIV_AGENT_STATE_DIR=str(tmp_path))

    assert agent.process.wait(15) == 3
    assert "cannot join" in agent.log() and "inv-join-wrong" not in agent.log()
