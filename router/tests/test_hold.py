"""Scale from zero: requests for a model with no routable instance are held while its pool grows.

The pool directory and the wake hook are test doubles in this module, named in settings as autoscaling's
real ones are; the router, the clients and the engines are real loopback servers.
"""

import asyncio
import json
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
import requests

from router.models import RequestTrace
from router.pools import load_pool_directory
from router.tests.factories import (
    MODEL, client_key, new_engine_key, openai_client, router_config, serving_instance, wait_for,
)
from router.tests.servers import runtime_of
from worker_agent.simulator import SimConfig
from worker_agent.simulator.inprocess import LOOPBACK, start_simulator

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello router"}]
POOL_ID = 41
OTHER_MODEL = "Qwen/Qwen2.5-7B-Instruct"
# Long enough never to run out while a test waits for an instance; the tests that want a timeout say so.
LONG_HOLD_S = 10.0
SHORT_HOLD_S = 0.3
# Test configuration: keep-alives and reports come quickly, so a test sees several.
HOLD_CONFIG = router_config(hold_keepalive_s=0.05, hold_report_interval_s=0.05)
KEEPALIVE = b": keep-alive\n\n"

# What the doubles answer and what they were told (the wake hook runs on the router's hook thread).
directory: dict[str, dict] = {}
reports: list[tuple[int, int]] = []
wake_fails = threading.Event()


def pool_directory() -> dict[str, dict]:
    return {model: dict(entry) for model, entry in directory.items()}


def wake_pool(pool_id: int, held: int) -> None:
    reports.append((pool_id, held))
    if wake_fails.is_set():
        raise RuntimeError("the autoscaler is away")


@pytest.fixture
def pools(settings):
    """The doubles in settings, and `pools(model, **entry)` to put a pool in the directory."""
    settings.ROUTER_POOL_DIRECTORY = f"{__name__}.pool_directory"
    settings.ROUTER_POOL_WAKE = f"{__name__}.wake_pool"
    directory.clear()
    reports.clear()
    wake_fails.clear()

    def add(model: str = MODEL, **entry) -> None:
        directory[model] = {"pool": "echo-pool", "pool_id": POOL_ID, "can_grow": True,
                            "hold_timeout_s": LONG_HOLD_S, "queue_size": 10, **entry}

    yield add
    directory.clear()


def chat_body(**body) -> dict:
    return {"model": MODEL, "messages": HELLO, "max_tokens": 4, **body}


def post_chat(router, key, **body):
    return requests.post(f"{router.url}/v1/chat/completions", json=chat_body(**body),
                         headers={"Authorization": f"Bearer {key}"}, timeout=LONG_HOLD_S)


def held(router) -> int:
    return runtime_of(router).holds.held(POOL_ID)


def in_background(function, *args, **kwargs):
    """Start `function` in a thread; its future's result() is the answer."""
    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(function, *args, **kwargs)
    executor.shutdown(wait=False)
    return future


def traces() -> list[RequestTrace]:
    return list(RequestTrace.objects.order_by("created_at", "id"))


def test_a_held_request_is_answered_once_an_instance_is_ready(pools, engines, start_router):
    pools()
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    client = openai_client(router.url, key)

    answer = in_background(client.chat.completions.create, model=MODEL, messages=HELLO, max_tokens=4)
    wait_for(lambda: held(router) == 1, what="the request to be held")
    assert not answer.done()
    engine = engines()

    assert answer.result(timeout=LONG_HOLD_S).choices[0].message.content == "hello router hello router"
    router.stop()
    (trace,) = traces()
    assert (trace.status_code, trace.outcome, str(trace.instance_id)) == (200, "ok", engine.id)
    assert 0 < trace.held_ms <= trace.latency_ms


def test_a_held_stream_gets_keep_alives_then_the_engines_events(pools, engines, start_router):
    pools()
    key = client_key()
    router = start_router(config=HOLD_CONFIG)

    async def stream() -> tuple[aiohttp.ClientResponse, bytes, bytes]:
        async with aiohttp.ClientSession() as session, session.post(
            f"{router.url}/v1/chat/completions", json=chat_body(max_tokens=3, stream=True),
            headers={"Authorization": f"Bearer {key}"},
        ) as answer:
            before = b""
            while before.count(KEEPALIVE) < 2:  # headers at once, then comments while it is held
                before += await answer.content.readany()
            await asyncio.to_thread(engines)
            return answer, before, await answer.content.read()

    answer, before, after = asyncio.run(stream())

    assert answer.status == 200 and answer.headers["Content-Type"] == "text/event-stream"
    assert before == KEEPALIVE * before.count(KEEPALIVE)
    events = [event for event in after.split(b"\n\n") if event and event != KEEPALIVE.strip()]
    assert [event.startswith(b'data: {') for event in events[:-1]] == [True] * (len(events) - 1)
    assert events[-1] == b"data: [DONE]"
    text = "".join(json.loads(event[len(b"data: "):])["choices"][0]["delta"].get("content") or ""
                   for event in events[:-1])
    assert text == "hello router hello"
    router.stop()
    (trace,) = traces()
    assert (trace.status_code, trace.outcome, trace.stream, trace.completion_tokens) == (200, "ok", True, 3)
    assert trace.held_ms is not None and trace.ttft_ms >= trace.held_ms


def test_the_openai_client_reads_a_held_stream(pools, engines, start_router):
    pools()
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    client = openai_client(router.url, key)

    def read() -> str:
        chunks = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3, stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)

    text = in_background(read)
    wait_for(lambda: held(router) == 1, what="the stream to be held")
    engines()

    assert text.result(timeout=LONG_HOLD_S) == "hello router hello"


def test_a_hold_that_times_out_is_a_503_with_retry_after(pools, start_router):
    pools(hold_timeout_s=SHORT_HOLD_S)
    key = client_key()
    router = start_router(config=HOLD_CONFIG)

    answer = post_chat(router, key)

    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) >= 1
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert answer.json()["error"]["code"] == "hold_timeout"
    assert held(router) == 0
    router.stop()
    (trace,) = traces()
    assert (trace.status_code, trace.outcome) == (503, "hold_timeout")
    assert trace.held_ms >= SHORT_HOLD_S * 1000 * 0.9 and "echo-pool" in trace.error_message


def test_a_held_stream_that_times_out_ends_with_an_error_event(pools, start_router):
    pools(hold_timeout_s=SHORT_HOLD_S)
    key = client_key()
    router = start_router(config=HOLD_CONFIG)

    answer = post_chat(router, key, stream=True)

    assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/event-stream"
    events = [event for event in answer.text.split("\n\n") if event]
    assert events[0] == KEEPALIVE.decode().strip()
    assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == "hold_timeout"
    assert events[-1] == "data: [DONE]"
    router.stop()
    (trace,) = traces()
    assert (trace.status_code, trace.outcome, trace.stream) == (200, "hold_timeout", True)


def test_a_held_stream_whose_instance_fails_ends_with_an_error_event(pools, seed, start_router):
    pools()
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    engine_key = new_engine_key()
    failing = start_simulator(SimConfig(model=MODEL, api_key=engine_key))
    try:
        requests.post(f"{failing.url}/sim/fail", timeout=5)
        answer = in_background(post_chat, router, key, stream=True)
        wait_for(lambda: held(router) == 1, what="the stream to be held")
        serving_instance(port=failing.port, engine_key=engine_key)
        events = [event for event in answer.result(timeout=LONG_HOLD_S).text.split("\n\n") if event]
    finally:
        failing.stop()

    error = json.loads(events[-2][len("data: "):])["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert events[-1] == "data: [DONE]"


def test_a_full_queue_answers_429_at_once(pools, engines, start_router):
    pools(queue_size=1)
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    first = in_background(post_chat, router, key)
    wait_for(lambda: held(router) == 1, what="the first request to be held")

    refused = post_chat(router, key)

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "hold_queue_full"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert not first.done()
    engines()
    assert first.result(timeout=LONG_HOLD_S).status_code == 200
    router.stop()
    assert {(t.status_code, t.outcome) for t in traces()} == {(429, "hold_queue_full"), (200, "ok")}


def test_the_wake_hook_hears_of_the_first_held_request_at_once_then_of_the_count_then_of_zero(
        pools, engines, start_router):
    pools()
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    answers = [in_background(post_chat, router, key) for _ in range(2)]
    wait_for(lambda: held(router) == 2, what="both requests to be held")
    wait_for(lambda: reports[-1:] == [(POOL_ID, 2)], what="the count to be reported again")

    engines()

    assert [answer.result(timeout=LONG_HOLD_S).status_code for answer in answers] == [200, 200]
    wait_for(lambda: reports[-1:] == [(POOL_ID, 0)], what="the emptied queue to be reported")
    # The first report goes out when the first request is held; it carries the count when the hook runs,
    # which is 2 if the second request was held meanwhile.
    assert reports[0] in ((POOL_ID, 1), (POOL_ID, 2))
    assert reports.count((POOL_ID, 0)) == 1
    assert set(reports) <= {(POOL_ID, 1), (POOL_ID, 2), (POOL_ID, 0)}


def test_a_failing_wake_hook_fails_no_request(pools, engines, start_router, caplog):
    pools()
    wake_fails.set()
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    answer = in_background(post_chat, router, key)
    wait_for(lambda: len(reports) >= 3, what="several reports")

    engines()

    assert answer.result(timeout=LONG_HOLD_S).status_code == 200
    wait_for(lambda: reports[-1:] == [(POOL_ID, 0)], what="the last report")
    failures = [r for r in caplog.records if r.name == "router.hold_queues" and r.levelno == logging.ERROR]
    assert len(failures) == 1  # once per outage, not every two seconds


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_client_that_hangs_up_while_held_frees_its_place(pools, engines, start_router, stream):
    pools(queue_size=1)
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    body = json.dumps(chat_body(stream=stream)).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {LOOPBACK}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    with socket.create_connection((LOOPBACK, router.port), timeout=LONG_HOLD_S) as client:
        client.sendall(request)
        wait_for(lambda: held(router) == 1, what="the request to be held")
    wait_for(lambda: held(router) == 0, what="the hung-up request to leave the queue")
    wait_for(lambda: reports[-1:] == [(POOL_ID, 0)], what="the emptied queue to be reported")

    second = in_background(post_chat, router, key)
    wait_for(lambda: held(router) == 1, what="the next request to take the place")
    engines()
    assert second.result(timeout=LONG_HOLD_S).status_code == 200
    router.stop()
    first = traces()[0]
    assert first.outcome == "client_disconnected" and first.status_code == (200 if stream else 499)
    assert first.held_ms is not None


def test_a_model_without_a_pool_that_may_grow_is_a_503_at_once(pools, engines, start_router):
    engines()  # the echo model is served: the router has a table, and the other model has nothing
    pools(OTHER_MODEL, can_grow=False)
    key = client_key()
    router = start_router(config=HOLD_CONFIG)

    cannot_grow = post_chat(router, key, model=OTHER_MODEL)
    directory.clear()
    wait_for(lambda: not runtime_of(router).pools, what="the directory to be reloaded")
    no_pool = post_chat(router, key, model=OTHER_MODEL)

    for answer in (cannot_grow, no_pool):
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "no_instance"
        assert int(answer.headers["Retry-After"]) >= 1
    assert reports == []
    router.stop()
    assert {(t.outcome, t.held_ms) for t in traces()} == {("no_instance", None)}


def test_models_list_a_model_asleep_in_a_pool_that_may_grow(pools, start_router):
    pools()
    pools(OTHER_MODEL, can_grow=False)
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    wait_for(lambda: runtime_of(router).pools, what="the directory to be loaded")

    listed = openai_client(router.url, key).models.list()

    # A client that lists models first finds the sleeping one: asking for it wakes its pool.
    assert [model.id for model in listed.data] == [MODEL]


def test_a_held_request_is_released_with_a_503_when_its_pool_leaves_the_directory(pools, start_router):
    pools()
    key = client_key()
    router = start_router(config=HOLD_CONFIG)
    answer = in_background(post_chat, router, key)
    wait_for(lambda: held(router) == 1, what="the request to be held")

    directory.clear()

    assert answer.result(timeout=LONG_HOLD_S).json()["error"]["code"] == "no_instance"


def test_a_hook_that_cannot_be_imported_is_logged_once_and_holds_nothing(seed, settings, start_router, caplog):
    settings.ROUTER_POOL_DIRECTORY = "router.tests.no_such_module.pools"
    key = client_key()
    router = start_router(config=router_config(refresh_interval_s=0.05))
    runtime = runtime_of(router)
    first_table = runtime.table
    wait_for(lambda: runtime.table is not first_table, what="another refresh")

    assert post_chat(router, key).status_code == 503
    warnings = [r for r in caplog.records if "ROUTER_POOL_DIRECTORY" in r.getMessage()]
    assert len(warnings) == 1 and runtime.pools == {}


def test_unusable_directory_entries_are_skipped(settings):
    settings.ROUTER_POOL_DIRECTORY = f"{__name__}.pool_directory"
    directory.clear()
    directory.update({
        "good": {"pool": "p", "pool_id": 1, "can_grow": True, "hold_timeout_s": 30, "queue_size": 5},
        "missing-fields": {"pool": "p"},
        "not-a-number": {"pool": "p", "pool_id": 2, "can_grow": True, "hold_timeout_s": "soon", "queue_size": 5},
    })
    try:
        pools = load_pool_directory()
    finally:
        directory.clear()

    assert list(pools) == ["good"]
    assert (pools["good"].pool_id, pools["good"].hold_timeout_s, pools["good"].holds) == (1, 30.0, True)
