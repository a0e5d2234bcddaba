"""The vLLM-protocol simulator, spoken to over real HTTP."""

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest

from worker_agent.metrics import EngineMetricsReader, parse_prometheus_text
from worker_agent.simulator import SimConfig, start_simulator
from worker_agent.tests.conftest import POLL_S, REPO_ROOT, WAIT_S, free_port, port_open, wait_for

KEY = "sim-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "mock-echo", "messages": [{"role": "system", "content": "be brief"},
                                           {"role": "user", "content": "alpha beta gamma"}], "max_tokens": 5}
# Long enough that the port is surely still closed when the test looks, once loading has begun.
CLI_LOAD_TIME_S = 2.0


@pytest.fixture
def sim():
    with start_simulator(SimConfig(model="org/Mock-Echo-1B", served_model_names=["mock-echo", "echo"],
                                   api_key=KEY, max_num_seqs=4)) as server:
        yield server


def call(server, path: str, body: Any = None, *, headers: dict[str, str] | None = None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(server.url + path, data=data, headers={**AUTH, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def sse_events(payload: bytes) -> list[str]:
    assert payload.endswith(b"\n\n")
    return [event.removeprefix("data: ") for event in payload.decode().split("\n\n") if event]


def engine_samples(server) -> dict[str, float]:
    status, body = call(server, "/metrics")
    assert status == 200
    return {s.name: s.value for s in parse_prometheus_text(body.decode()) if "le" not in s.labels}


def test_it_lists_the_served_models_in_openai_shape(sim):
    status, body = call(sim, "/v1/models")
    listing = json.loads(body)
    assert status == 200 and listing["object"] == "list"
    assert [card["id"] for card in listing["data"]] == ["mock-echo", "echo"]
    card = listing["data"][0]
    assert card["object"] == "model" and card["owned_by"] == "vllm" and card["root"] == "org/Mock-Echo-1B"
    assert isinstance(card["created"], int) and card["max_model_len"] == 32768


def test_it_answers_401_like_vllm_to_a_missing_or_wrong_key_on_v1_only(sim):
    assert call(sim, "/v1/models", headers={"Authorization": "Bearer nope"}) == (401, b'{"error": "Unauthorized"}')
    request = urllib.request.Request(sim.url + "/v1/chat/completions", data=json.dumps(CHAT).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    assert call(sim, "/health", headers={"Authorization": "Bearer nope"}) == (200, b"")
    assert json.loads(call(sim, "/version")[1])["version"].endswith("+inventiv.sim")
    assert call(sim, "/ping")[0] == 200


def test_it_completes_a_chat_deterministically_with_usage(sim):
    status, body = call(sim, "/v1/chat/completions", CHAT)
    reply = json.loads(body)
    assert status == 200 and reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    assert reply["model"] == "mock-echo"
    choice = reply["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "alpha beta gamma alpha beta", "tool_calls": []}
    assert choice["finish_reason"] == "length"
    assert reply["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10,
                              "prompt_tokens_details": None}
    again = json.loads(call(sim, "/v1/chat/completions", CHAT)[1])
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]
    default = json.loads(call(sim, "/v1/chat/completions", {**CHAT, "max_tokens": None})[1])
    assert default["usage"]["completion_tokens"] == 16


def test_it_streams_a_chat_as_sse_with_a_usage_chunk_then_done(sim):
    status, body = call(sim, "/v1/chat/completions",
                        {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    events = sse_events(body)
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "alpha beta gamma alpha beta"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10,
                                   "prompt_tokens_details": None}


def test_it_streams_without_a_usage_chunk_unless_asked(sim):
    events = sse_events(call(sim, "/v1/chat/completions", {**CHAT, "stream": True})[1])
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(event) for event in events[:-1])


def test_it_serves_text_completions_plain_and_streamed(sim):
    request = {"model": "echo", "prompt": "one two three", "max_tokens": 4}
    reply = json.loads(call(sim, "/v1/completions", request)[1])
    assert reply["object"] == "text_completion" and reply["choices"][0]["text"] == "one two three one"
    assert reply["usage"]["prompt_tokens"] == 3 and reply["usage"]["completion_tokens"] == 4
    events = sse_events(call(sim, "/v1/completions",
                             {**request, "stream": True, "stream_options": {"include_usage": True}})[1])
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "one two three one"
    assert chunks[-1]["usage"]["total_tokens"] == 7 and events[-1] == "[DONE]"


def test_it_embeds_deterministically_into_unit_vectors(sim):
    reply = json.loads(call(sim, "/v1/embeddings", {"model": "mock-echo", "input": ["hello world", "other"]})[1])
    first, second = (item["embedding"] for item in reply["data"])
    assert reply["object"] == "list" and len(first) == 16 and first != second
    assert math.isclose(sum(v * v for v in first), 1.0)
    assert reply["usage"]["prompt_tokens"] == 3
    again = json.loads(call(sim, "/v1/embeddings", {"model": "mock-echo", "input": "hello world"})[1])
    assert again["data"][0]["embedding"] == first


def test_it_answers_errors_in_vllms_shape(sim):
    status, body = call(sim, "/v1/chat/completions", {**CHAT, "model": "gpt-4"})
    assert status == 404 and json.loads(body) == {"error": {
        "message": "The model `gpt-4` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}}
    status, body = call(sim, "/v1/chat/completions", raw=b"{not json")
    assert status == 400 and json.loads(body)["error"]["type"] == "BadRequestError"
    assert call(sim, "/v1/chat/completions", {"model": "mock-echo"})[0] == 400
    assert call(sim, "/v1/chat/completions", {**CHAT, "max_tokens": 0})[0] == 400
    assert call(sim, "/v1/completions", {"model": "mock-echo", "prompt": 42})[0] == 400


def test_its_health_answers_503_while_dead_by_switch_or_by_file(tmp_path):
    dead_file = tmp_path / "dead"
    with start_simulator(SimConfig(dead_file=str(dead_file))) as server:
        assert call(server, "/health")[0] == 200
        call(server, "/sim/fail", {})
        assert call(server, "/health")[0] == 503
        assert call(server, "/v1/chat/completions", CHAT)[0] == 500
        call(server, "/sim/recover", {})
        assert call(server, "/health")[0] == 200
        dead_file.touch()
        assert call(server, "/health")[0] == 503


def test_it_queues_requests_beyond_max_num_seqs_and_reports_them_waiting(sim):
    # One token a second keeps every admitted stream busy while the test looks; then the test lets them finish.
    assert call(sim, "/sim/config", {"tokens_per_second": 1})[0] == 200

    async def load() -> tuple[dict[str, float], list[int]]:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async def one() -> int:
                async with session.post(sim.url + "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
                    await response.read()
                    return response.status

            async def samples() -> dict[str, float]:
                async with session.get(sim.url + "/metrics") as response:
                    return {s.name: s.value for s in parse_prometheus_text(await response.text())}

            tasks = [asyncio.create_task(one()) for _ in range(7)]
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while (during := await samples())["vllm:num_requests_waiting"] < 3:
                assert asyncio.get_running_loop().time() < deadline, "timed out waiting for the 7 requests"
                await asyncio.sleep(POLL_S)
            async with session.post(sim.url + "/sim/config", json={"tokens_per_second": 0}) as response:
                assert response.status == 200
            return during, await asyncio.gather(*tasks)

    during, statuses = asyncio.run(load())
    assert statuses == [200] * 7
    assert during["vllm:num_requests_running"] == 4 and during["vllm:num_requests_waiting"] == 3
    assert during["vllm:kv_cache_usage_perc"] == 1.0
    after = engine_samples(sim)
    assert after["vllm:num_requests_running"] == 0 and after["vllm:num_requests_waiting"] == 0


def test_it_counts_tokens_and_latencies_in_vllms_metric_names(sim):
    reader = EngineMetricsReader()
    reader.read(call(sim, "/metrics")[1].decode())
    call(sim, "/sim/config", {"ttft": 0.05, "tokens_per_second": 100})
    started = time.monotonic()
    call(sim, "/v1/chat/completions", {**CHAT, "stream": True})
    assert time.monotonic() - started >= 0.05 + 4 * 0.01
    call(sim, "/v1/chat/completions", CHAT)
    both_took_s = time.monotonic() - started
    text = call(sim, "/metrics")[1].decode()
    metrics = reader.read(text)
    assert metrics.prompt_tokens_total == 10 and metrics.generation_tokens_total == 10
    assert metrics.requests_total == 2
    assert metrics.ttft_p50_s >= 0.04 and metrics.itl_p50_s > 0  # vLLM's bucket below 0.05 s is 0.04
    # In seconds: each request's time to first token and time between tokens fit in what the client waited
    # (bounds that hold however slow the machine is).
    sums = {s.name: s.value for s in parse_prometheus_text(text) if s.name.endswith("_seconds_sum")}
    assert 0 < sums["vllm:time_to_first_token_seconds_sum"] <= both_took_s
    assert 0 < sums["vllm:inter_token_latency_seconds_sum"] <= both_took_s
    success = {s.labels["finished_reason"]: s.value for s in parse_prometheus_text(call(sim, "/metrics")[1].decode())
               if s.name == "vllm:request_success_total"}
    assert success == {"stop": 0, "length": 2, "abort": 0}


def test_its_runtime_config_rejects_unknown_or_invalid_settings(sim):
    assert call(sim, "/sim/config", {"colour": 1})[0] == 400
    assert call(sim, "/sim/config", {"max_num_seqs": 0})[0] == 400
    status, body = call(sim, "/sim/config", {"max_num_seqs": 8, "tokens_per_second": 50})
    assert status == 200 and json.loads(body) == {"ttft": 0.0, "prefill_tokens_per_second": 4000.0,
                                                  "tokens_per_second": 50.0, "max_num_seqs": 8}


@pytest.mark.slow
def test_its_cli_keeps_the_port_closed_while_loading_and_exits_0_on_sigterm(tmp_path):
    port = free_port()
    log = tmp_path / "simulator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker_agent.simulator", "--model", "m", "--port", str(port),
             "--load-time", str(CLI_LOAD_TIME_S)],
            cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: b"Loading model" in log.read_bytes(), message="the simulator to start loading")
        assert not port_open(port)
        wait_for(lambda: port_open(port), message="the simulator to listen")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_stream_the_client_abandons_frees_its_slot_and_counts_as_aborted(sim):
    call(sim, "/sim/config", {"tokens_per_second": 50})

    async def abandon() -> None:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.post(sim.url + "/v1/chat/completions",
                                    json={**CHAT, "max_tokens": 500, "stream": True}) as response:
                await response.content.readline()  # the first event arrived: walk away mid-stream

    asyncio.run(abandon())

    def aborted() -> bool:
        samples = parse_prometheus_text(call(sim, "/metrics")[1].decode())
        return any(s.name == "vllm:request_success_total" and s.labels["finished_reason"] == "abort" and s.value == 1
                   for s in samples)

    wait_for(aborted, message="the aborted request to be counted")  # else it ends as "length"
    assert engine_samples(sim)["vllm:num_requests_running"] == 0
