"""The agent as a real process against a stub control plane and a simulated engine."""

import json
import signal
import threading
import urllib.error
import urllib.request

import pytest

from worker_agent.gpu import GpuProbe
from worker_agent.metrics import parse_prometheus_text
from worker_agent.simulator import SimConfig, start_simulator
from worker_agent.tests.conftest import ENGINE_API_KEY, WORKER_TOKEN, free_port, port_open, wait_for
from worker_agent.tests.stub_control_plane import StubControlPlane

pytestmark = pytest.mark.slow  # each test starts an agent process (and most a simulator process)

ENGINE_KEYS = {
    "running", "waiting", "kv_cache_usage", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s",
    "prompt_tokens_total", "generation_tokens_total", "requests_total", "preemptions_total",
    "prefix_cache_queries_total", "prefix_cache_hits_total", "prefix_cache_hit_rate",
}
HOST_KEYS = {"cpu_pct", "memory_used_mb", "memory_total_mb", "disk_used_gb", "disk_total_gb", "net_rx_bytes",
             "net_tx_bytes"}


def chat(engine_port: int) -> None:
    body = json.dumps({"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{engine_port}/v1/chat/completions", data=body,
                                     headers={"Authorization": f"Bearer {ENGINE_API_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_it_registers_then_reports_starting_until_the_engine_answers_and_ready_after(control_plane, start_agent):
    agent = start_agent(control_plane.url, INVENTIV_SIM_LOAD_TIME_S="1.0")
    wait_for(lambda: "ready" in control_plane.statuses(), message="a ready heartbeat")

    registration = control_plane.registrations[0]
    assert registration["instance_id"] == "inst-test-1"
    assert registration["model"] == "mock-echo"
    assert registration["agent_port"] == agent.agent_port and registration["engine_port"] == agent.engine_port
    assert registration["engine_version"].endswith("+inventiv.sim")
    assert set(registration["host"]) == {"hostname", "cpu_count", "memory_total_mb"}
    # No GPU on CI: an empty list and no crash; on a GPU machine, what NVML lists.
    assert registration["gpus"] == GpuProbe().inventory()

    statuses = control_plane.statuses()
    assert statuses[0] == "starting"  # the simulated model was still loading, its port closed
    first_ready = next(beat for beat in control_plane.heartbeats if beat["status"] == "ready")
    assert first_ready["model"] == "mock-echo" and first_ready["reason"] is None
    assert set(first_ready["engine"]) == ENGINE_KEYS and first_ready["engine"]["running"] == 0
    assert set(first_ready["host"]) == HOST_KEYS
    assert [gpu["name"] for gpu in first_ready["gpus"]] == [gpu["name"] for gpu in registration["gpus"]]
    assert "engine_log_tail" not in first_ready and first_ready["sent_at"].endswith("+00:00")
    assert get(agent.url + "/readyz")[0] == 200


def test_it_drains_on_request_with_readyz_503_and_reports_in_flight_down_to_0(control_plane, start_agent):
    agent = start_agent(control_plane.url, INVENTIV_SIM_TTFT_S="1.5")
    wait_for(lambda: "ready" in control_plane.statuses(), message="ready")
    requests = [threading.Thread(target=chat, args=(agent.engine_port,)) for _ in range(3)]
    for request in requests:
        request.start()
    control_plane.action = "drain"
    wait_for(lambda: any(b["status"] == "draining" and b["in_flight"] == 3 for b in list(control_plane.heartbeats)),
             message="a draining heartbeat with the 3 requests in flight")
    status, body = get(agent.url + "/readyz")
    assert status == 503 and json.loads(body)["reason"] == "draining"
    for request in requests:
        request.join(10)
    wait_for(lambda: control_plane.heartbeats[-1]["in_flight"] == 0, message="in_flight back to 0")
    assert control_plane.heartbeats[-1]["status"] == "draining"
    assert get(agent.url + "/healthz")[0] == 200


def test_it_stops_the_engine_and_exits_0_when_told_to_shut_down(control_plane, start_agent):
    agent = start_agent(control_plane.url)
    wait_for(lambda: "ready" in control_plane.statuses(), message="ready")
    control_plane.action = "shutdown"
    assert agent.process.wait(15) == 0
    assert not port_open(agent.engine_port)


def test_it_exits_0_on_sigterm_and_stops_the_engine_it_supervises(control_plane, start_agent):
    agent = start_agent(control_plane.url)
    wait_for(lambda: "ready" in control_plane.statuses(), message="ready")
    assert port_open(agent.engine_port)
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(15) == 0
    assert not port_open(agent.engine_port)
    assert "engine stopped" in agent.log()


def test_it_keeps_running_while_the_control_plane_is_down_and_recovers(start_agent):
    port = free_port()
    agent = start_agent(f"http://127.0.0.1:{port}")
    wait_for(lambda: "register failed" in agent.log(), message="a refused registration")
    assert agent.process.poll() is None
    assert get(agent.url + "/healthz")[0] == 200

    stub = StubControlPlane(token=WORKER_TOKEN, heartbeat_interval_s=0.2)
    server = stub.serve(port=port)
    try:
        wait_for(lambda: "ready" in stub.statuses(), message="heartbeats after the control plane came back")
        stub.fail_status = 503
        wait_for(lambda: stub.rejected >= 2, message="failed heartbeats")
        assert agent.process.poll() is None
        sent = len(stub.heartbeats)
        stub.fail_status = None
        wait_for(lambda: len(stub.heartbeats) > sent, message="heartbeats resuming")
        failures = parse_prometheus_text(get(agent.url + "/metrics")[1].decode())
        assert next(s.value for s in failures if s.name == "inventiv_agent_heartbeat_failures_total") >= 2
    finally:
        server.stop()


def test_it_waits_as_long_as_a_503_retry_after_asks_before_trying_again(control_plane, start_agent):
    agent = start_agent(control_plane.url)
    wait_for(lambda: "ready" in control_plane.statuses(), message="a ready heartbeat")
    control_plane.retry_after = "1"
    control_plane.fail_status = 503  # the control plane's database is unreachable

    wait_for(lambda: control_plane.rejected >= 3, message="three refused heartbeats")
    control_plane.fail_status = None

    gaps = [later - earlier for earlier, later in zip(control_plane.rejected_at, control_plane.rejected_at[1:])]
    assert min(gaps) >= 0.9  # the 0.2 s heartbeat interval would have retried five times as often
    assert "retrying in 1.0 s" in agent.log()
    sent = len(control_plane.heartbeats)
    wait_for(lambda: len(control_plane.heartbeats) > sent, message="heartbeats resuming")


def test_it_registers_again_when_the_control_plane_answers_409(control_plane, start_agent):
    start_agent(control_plane.url)
    wait_for(lambda: control_plane.heartbeats, message="a heartbeat")
    control_plane.forget()
    wait_for(lambda: len(control_plane.registrations) >= 2, message="a second registration")


def test_it_keeps_retrying_when_its_token_is_refused(control_plane, start_agent):
    agent = start_agent(control_plane.url, INVENTIV_WORKER_TOKEN="wrong-token")
    wait_for(lambda: control_plane.rejected >= 2, message="two refused registrations")
    assert agent.process.poll() is None and control_plane.registrations == []
    assert "401" in agent.log()


def test_it_attaches_to_a_running_engine_and_reports_its_metrics(control_plane, start_agent):
    with start_simulator(SimConfig(model="mock-echo", api_key=ENGINE_API_KEY)) as engine:
        agent = start_agent(control_plane.url, INVENTIV_ENGINE_MODE="attach", INVENTIV_ENGINE_PORT=str(engine.port))
        wait_for(lambda: "ready" in control_plane.statuses(), message="ready")
        assert "engine started" not in agent.log()
        status, body = get(agent.url + "/info")
        info = json.loads(body)
        assert status == 200 and info["engine_version"].endswith("+inventiv.sim")
        assert info["gpus"] == GpuProbe().inventory()
        status, body = get(agent.url + "/metrics")
        samples = {(s.name, s.labels.get("status")): s.value for s in parse_prometheus_text(body.decode())}
        assert samples[("inventiv_agent_status", "ready")] == 1
        assert samples[("inventiv_agent_engine_restarts_total", None)] == 0
    assert agent.process.poll() is None  # the engine went away; the agent did not


def test_it_reports_error_with_the_engine_log_tail_when_the_engine_keeps_failing(control_plane, start_agent, tmp_path):
    fake_vllm = tmp_path / "bin" / "vllm"
    fake_vllm.parent.mkdir()
    argv_file = tmp_path / "argv.json"
    fake_vllm.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {argv_file}\n"
        f"printf '%s' \"$VLLM_API_KEY\" > {argv_file}.key\n"
        f"echo 'loading weights with api key {ENGINE_API_KEY}'\n"
        "echo 'CUDA out of memory' >&2\n"
        "exit 3\n"
    )
    fake_vllm.chmod(0o755)
    agent = start_agent(
        control_plane.url,
        INVENTIV_ENGINE_MODE="vllm",
        INVENTIV_ENGINE_RESTART_BACKOFF_S="0.05",
        INVENTIV_ENGINE_ARGS="--gpu-memory-utilization 0.92",
        PATH=f"{fake_vllm.parent}:/usr/bin:/bin",
    )
    beat = wait_for(
        lambda: next((b for b in list(control_plane.heartbeats) if b["status"] == "error"), None),
        message="an error heartbeat",
    )
    assert "engine exited with code 3" in beat["reason"]
    assert "CUDA out of memory" in beat["engine_log_tail"]
    assert any(ENGINE_API_KEY not in line and "***" in line for line in beat["engine_log_tail"])
    assert argv_file.read_text().split() == [
        "serve", "mock-echo", "--served-model-name", "mock-echo", "--port", str(agent.engine_port),
        "--host", "127.0.0.1", "--gpu-memory-utilization", "0.92",
    ]  # the key is not on the command line...
    assert (tmp_path / "argv.json.key").read_text() == ENGINE_API_KEY  # ...but in vLLM's environment
    log = agent.log()
    assert ENGINE_API_KEY not in log and WORKER_TOKEN not in log
