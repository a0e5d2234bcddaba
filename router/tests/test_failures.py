"""What the router does when engines fail: retries, circuit breakers, broken streams."""

import asyncio

import aiohttp
import openai
import pytest
import requests

from router.breaker import CLOSED, HALF_OPEN, OPEN
from router.models import RequestTrace
from router.tests.factories import (
    MODEL, Engine, client_key, new_engine_key, openai_client, router_config, serving_instance, wait_for,
)
from router.tests.servers import BreakingUpstream, SimulatorProcess, runtime_of
from worker_agent.metrics import parse_prometheus_text

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello router"}]
LOAD_REQUESTS = 100
LOAD_CONCURRENCY = 20
KILL_AFTER = 30


@pytest.fixture
def killable_engine(seed):
    key = new_engine_key()
    process = SimulatorProcess(model=MODEL, api_key=key, ttft_s=0.02)
    yield Engine(serving_instance(port=process.port, engine_key=key), process, key)
    process.stop()


@pytest.fixture
def breaking_engine(seed):
    upstream = BreakingUpstream(events=2).start()
    yield Engine(serving_instance(port=upstream.port, engine_key=new_engine_key()), upstream, "")
    upstream.stop()


def post_chat(router, key, **body):
    return requests.post(f"{router.url}/v1/chat/completions",
                         json={"model": MODEL, "messages": HELLO, "max_tokens": 2, **body},
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_killing_an_instance_under_load_fails_no_request(engines, killable_engine, start_router):
    survivor = engines(ttft_s=0.02)
    key = client_key()
    router = start_router()

    async def load() -> list[tuple[int, str, str]]:
        done, results = asyncio.Event(), []
        limit = asyncio.Semaphore(LOAD_CONCURRENCY)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
            async def one() -> None:
                async with limit, session.post(f"{router.url}/v1/chat/completions",
                                               json={"model": MODEL, "messages": HELLO, "max_tokens": 2}) as answer:
                    await answer.read()
                    results.append((answer.status, answer.headers.get("x-inventiv-instance"),
                                    answer.headers.get("x-inventiv-route-reason")))
                    if len(results) == KILL_AFTER:
                        done.set()

            async def kill() -> None:
                await done.wait()
                await asyncio.to_thread(killable_engine.server.kill)

            await asyncio.gather(kill(), *(one() for _ in range(LOAD_REQUESTS)))
        return results

    results = asyncio.run(load())

    assert [status for status, _, _ in results] == [200] * LOAD_REQUESTS
    assert "retry" in {reason for _, _, reason in results}  # some requests met the dead instance first
    served_by = [instance for _, instance, _ in results]
    assert killable_engine.id in served_by[:KILL_AFTER]  # it did serve before it died
    assert served_by[-10:] == [survivor.id] * 10
    # Opened; by now maybe half-open (its cooldown is short in tests), but never closed again.
    assert runtime_of(router).breakers.state(killable_engine.id) in (OPEN, HALF_OPEN)


def test_a_failing_instance_is_retried_elsewhere_then_skipped_by_its_breaker_until_it_recovers(
        engines, start_router):
    failing, healthy = engines(), engines()
    key = client_key()
    # A cooldown longer than the eight requests take, however slow the machine.
    router = start_router(config=router_config(breaker_cooldown_s=2))
    breakers = runtime_of(router).breakers
    requests.post(f"{failing.url}/sim/fail", timeout=5)

    answers = [post_chat(router, key) for _ in range(8)]

    assert [a.status_code for a in answers] == [200] * 8
    assert {a.headers["x-inventiv-instance"] for a in answers} == {healthy.id}
    reasons = [a.headers["x-inventiv-route-reason"] for a in answers]
    assert reasons.count("retry") == 3  # the breaker's threshold; after that the instance is skipped
    assert breakers.state(failing.id) == OPEN

    requests.post(f"{failing.url}/sim/recover", timeout=5)
    wait_for(lambda: post_chat(router, key).headers["x-inventiv-instance"] == failing.id,
             what="the recovered instance to get traffic again")
    assert breakers.state(failing.id) == CLOSED


def test_every_instance_failing_gives_a_502(engines, start_router):
    first, second = engines(), engines()
    key = client_key()
    router = start_router()
    for engine in (first, second):
        requests.post(f"{engine.url}/sim/fail", timeout=5)

    answer = post_chat(router, key)

    assert answer.status_code == 502
    assert answer.json()["error"]["type"] == "upstream_error"
    assert "failed on 2 instance(s)" in answer.json()["error"]["message"]


def test_a_stream_broken_midway_ends_with_an_error_event_and_is_traced(breaking_engine, start_router):
    key = client_key()
    router = start_router()

    answer = post_chat(router, key, stream=True)
    events = [event for event in answer.text.split("\n\n") if event]

    assert answer.status_code == 200
    assert len(events) == 4
    assert [e.startswith('data: {"object": "chat.completion.chunk"') for e in events[:2]] == [True, True]
    assert events[2].startswith('data: {"error": {') and '"code": "stream_broken"' in events[2]
    assert events[3] == "data: [DONE]"
    with pytest.raises(openai.APIError, match="stream broke"):
        list(openai_client(router.url, key).chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    router.stop()
    assert set(RequestTrace.objects.values_list("outcome", "stream", "status_code")) == {("stream_broken", True, 200)}


def test_a_dead_instance_is_not_retried_once_its_breaker_opened_and_the_503_says_when_to_retry(
        seed, killable_engine, start_router):
    key = client_key()
    router = start_router(config=router_config(breaker_cooldown_s=30))
    killable_engine.server.kill()

    answers = [post_chat(router, key) for _ in range(4)]

    # The only instance is dead: three failed requests open its breaker, then nothing is tried.
    assert [answer.status_code for answer in answers] == [502, 502, 502, 503]
    assert answers[3].json()["error"]["code"] == "no_instance"
    assert int(answers[3].headers["Retry-After"]) >= 1


def upstream_aborted(engine: Engine) -> bool:
    """Whether the engine counted a request as aborted: its client (the router) hung up mid-generation."""
    text = requests.get(f"{engine.server.url}/metrics", timeout=10).text
    return any(sample.name == "vllm:request_success_total" and sample.labels["finished_reason"] == "abort"
               and sample.value == 1 for sample in parse_prometheus_text(text))


def test_a_client_hanging_up_mid_stream_stops_the_relay(engines, start_router):
    engine = engines(tokens_per_second=2)  # 100 tokens: fifty seconds of stream, unless the relay stops
    key = client_key()
    router = start_router()

    with requests.post(f"{router.url}/v1/chat/completions", stream=True, timeout=10,
                       json={"model": MODEL, "messages": HELLO, "max_tokens": 100, "stream": True},
                       headers={"Authorization": f"Bearer {key}"}) as answer:
        next(answer.iter_content(chunk_size=None))
    # The router closed its own request to the engine instead of reading the stream to its end.
    wait_for(lambda: upstream_aborted(engine), what="the engine to see the relay hang up")
    wait_for(lambda: runtime_of(router).usage.pending or runtime_of(router).usage.written, what="the trace")
    router.stop()

    trace = RequestTrace.objects.get()
    assert trace.outcome == "client_disconnected"
