"""The router's upstream client against a real simulator: keep-alive reuse, a stale connection, errors."""

import asyncio
import json

import pytest

from router.upstream import UPSTREAM_ERRORS, Endpoint, UpstreamPool, UpstreamTimeout
from worker_agent.simulator import SimConfig, start_simulator
from worker_agent.simulator.inprocess import LOOPBACK

KEY = "engine-key"
BODY = json.dumps({"model": "mock-echo", "messages": [{"role": "user", "content": "hello pool"}],
                   "max_tokens": 3}).encode()
PATH = b"/v1/chat/completions"


@pytest.fixture
def sim():
    with start_simulator(SimConfig(api_key=KEY, prefill_tokens_per_second=0)) as server:
        yield server


def run(coroutine_function, **pool_options):
    async def main():
        options = {"connect_timeout_s": 3, "read_timeout_s": 10, "keepalive_s": 4, **pool_options}
        pool = UpstreamPool(**options)
        try:
            return await coroutine_function(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def connections_made(pool: UpstreamPool) -> list:
    made = []
    connect = pool._connect

    async def counting(endpoint):
        made.append(endpoint)
        return await connect(endpoint)

    pool._connect = counting
    return made


def test_it_answers_with_status_content_type_and_body_and_reuses_one_connection(sim):
    async def exchange(pool):
        made = connections_made(pool)
        endpoint = Endpoint.of(LOOPBACK, sim.port, f"Bearer {KEY}")
        bodies = []
        for _ in range(5):
            response = await pool.post(endpoint, PATH, BODY)
            bodies.append((response.status, response.content_type, json.loads(await response.read())))
            response.release()
        return bodies, len(made)

    bodies, made = run(exchange)
    assert made == 1
    status, content_type, answer = bodies[-1]
    assert (status, content_type.split(b";")[0]) == (200, b"application/json")
    assert answer["choices"][0]["message"]["content"] == "hello pool hello"


def test_a_stream_is_read_chunk_by_chunk_to_its_end(sim):
    async def stream(pool):
        endpoint = Endpoint.of(LOOPBACK, sim.port, f"Bearer {KEY}")
        response = await pool.post(endpoint, PATH, json.dumps({**json.loads(BODY), "stream": True}).encode())
        chunks = []
        while chunk := await response.readany():
            chunks.append(chunk)
        response.release()
        return response.content_type, b"".join(chunks)

    content_type, body = run(stream)
    assert content_type.startswith(b"text/event-stream") and body.endswith(b"data: [DONE]\n\n")


def test_a_pooled_connection_the_engine_closed_is_replaced_without_an_error(sim):
    async def stale(pool):
        made = connections_made(pool)
        endpoint = Endpoint.of(LOOPBACK, sim.port, f"Bearer {KEY}")
        response = await pool.post(endpoint, PATH, BODY)
        await response.read()
        response.release()
        (idle,) = pool._idle[(LOOPBACK, sim.port)]
        idle.transport.abort()  # as if the engine had closed it while idle
        idle.closed = False  # ...and the pool had not noticed yet
        response = await pool.post(endpoint, PATH, BODY)
        status = response.status
        response.release()
        return status, len(made)

    assert run(stale) == (200, 2)


def test_an_engine_that_does_not_listen_or_answer_fails_with_an_upstream_error(sim):
    async def refused(pool):
        with pytest.raises(UPSTREAM_ERRORS):
            await pool.post(Endpoint.of(LOOPBACK, 9, ""), PATH, BODY)

    run(refused)

    async def silent(pool):
        server = await asyncio.start_server(lambda reader, writer: None, LOOPBACK, 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(UpstreamTimeout):
            await pool.post(Endpoint.of(LOOPBACK, port, ""), PATH, BODY)
        server.close()

    run(silent, read_timeout_s=0.2)


def test_send_now_uses_an_idle_connection_and_calls_back_with_the_whole_answer(sim):
    async def direct(pool):
        endpoint = Endpoint.of(LOOPBACK, sim.port, f"Bearer {KEY}")
        assert pool.send_now(endpoint, PATH, BODY, print) is None  # no idle connection yet: nothing sent
        response = await pool.post(endpoint, PATH, BODY)
        await response.read()
        response.release()
        done = asyncio.get_running_loop().create_future()
        response = pool.send_now(endpoint, PATH, BODY, done.set_result)
        error = await done
        status, body = response.status, response.body()
        response.release()
        return error, status, json.loads(body), len(pool._idle[(LOOPBACK, sim.port)])

    error, status, answer, idle = run(direct)
    assert (error, status, idle) == (None, 200, 1)
    assert answer["choices"][0]["message"]["content"] == "hello pool hello"


def test_send_now_fails_an_answer_that_does_not_come_within_the_read_timeout():
    with start_simulator(SimConfig(api_key=KEY, prefill_tokens_per_second=0, ttft_s=1.5)) as slow:
        async def direct(pool):
            endpoint = Endpoint.of(LOOPBACK, slow.port, f"Bearer {KEY}")
            response = await pool.post(endpoint, PATH, BODY)  # an idle connection, within the first timeout
            await response.read()
            response.release()
            pool.read_timeout_s = 0.3  # shorter than the engine's time to answer from now on
            done = asyncio.get_running_loop().create_future()
            pool.send_now(endpoint, PATH, BODY, done.set_result)
            started = asyncio.get_running_loop().time()
            error = await asyncio.wait_for(done, 5)
            return error, asyncio.get_running_loop().time() - started

        error, waited = run(direct)
    assert isinstance(error, UpstreamTimeout) and 0.3 <= waited < 1.4
