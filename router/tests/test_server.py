"""The express lane (router/server.py): generation requests answered as uvicorn's ASGI cycle answers them,
and every request the lane leaves to uvicorn still answered. Raw sockets where a client library would hide
the wire (pipelining, chunked uploads, HTTP/1.0)."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests

from router import direct
from router.asgi import RouterApp
from router.models import RequestTrace
from router.server import router_protocol
from router.tests.factories import MODEL, TEST_CONFIG, client_key, router_config
from router.tests.servers import UvicornThread
from worker_agent.simulator.inprocess import LOOPBACK

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello router"}]
SOCKET_TIMEOUT_S = 10.0
# Headers that differ between two answers whatever the lane: the clock, and which instance answered.
VARYING = {"date", "x-inventiv-instance"}


@pytest.fixture
def both_lanes(seed):
    """The same router configuration served twice: with the express lane, and by uvicorn's own protocol."""
    servers = []

    def start(config=TEST_CONFIG, **server) -> tuple[UvicornThread, UvicornThread]:
        express_app, plain_app = RouterApp(config), RouterApp(config)
        pair = (UvicornThread(express_app, http=router_protocol(express_app), **server).start(),
                UvicornThread(plain_app, http="httptools", **server).start())
        servers.extend(pair)
        return pair

    yield start
    for server in servers:
        server.stop()


def body_of(**fields) -> bytes:
    return json.dumps({"model": MODEL, "messages": HELLO, "max_tokens": 4, **fields}).encode()


def post(server, key, body: bytes, **headers) -> requests.Response:
    return requests.post(f"{server.url}/v1/chat/completions", data=body, timeout=SOCKET_TIMEOUT_S,
                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers})


def exchange(server, raw: bytes) -> bytes:
    """Send `raw` as it is and read until the server closes the connection."""
    with socket.create_connection((LOOPBACK, server.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def raw_post(key: str, body: bytes, *, path: str = "/v1/chat/completions", version: str = "1.1",
             extra: str = "") -> bytes:
    return (f"POST {path} HTTP/{version}\r\nHost: router\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def comparable(answer: requests.Response) -> tuple[int, dict, bytes]:
    headers = {name.lower(): value for name, value in answer.headers.items() if name.lower() not in VARYING}
    return answer.status_code, headers, answer.content


def test_the_express_lane_answers_as_uvicorns_cycle_does(engines, both_lanes):
    engines()
    key = client_key()
    express, plain = both_lanes()
    cases = [
        (key, body_of(), {}),  # an answer relayed
        (key, body_of(stream=True), {}),  # a stream (its events carry no instance-specific field)
        (key, b"{not json", {}),  # the router's 400
        ("sk-inv-unknown", body_of(), {}),  # 401
        (key, body_of(model="no-such-model"), {}),  # 404
        (key, body_of(), {"X-Session-Id": "user-1"}),  # affinity: its route reason
    ]
    for case_key, body, headers in cases:
        got, expected = comparable(post(express, case_key, body, **headers)), comparable(post(plain, case_key, body, **headers))
        if got[1].get("content-type", "").startswith("text/event-stream"):
            # Generated ids and timestamps differ from one stream to the next; the shape must not.
            got, expected = [(status, headers, _event_shape(content)) for status, headers, content in (got, expected)]
        elif got[0] == 200:
            got, expected = [(status, headers, _answer_shape(content)) for status, headers, content in (got, expected)]
        assert got == expected, body


@pytest.mark.parametrize("server_headers", [[("X-Served-By", "inventiv")], [("Connection", "close")]])
def test_server_headers_are_written_as_uvicorn_writes_them(engines, both_lanes, server_headers):
    # The direct lane joins the server's header lines once per second; headers that close the connection
    # take the head built header by header.
    engines()
    key = client_key()
    express, plain = both_lanes(headers=server_headers)
    for _ in range(2):
        (status, headers, content), expected = comparable(post(express, key, body_of())), comparable(post(plain, key, body_of()))
        assert (status, headers, _answer_shape(content)) == (expected[0], expected[1], _answer_shape(expected[2]))
        assert headers[server_headers[0][0].lower()] == server_headers[0][1]


def test_the_access_log_names_the_client_as_uvicorn_does(engines, both_lanes, capfd):
    engines()
    key = client_key()
    lines = []
    for server in both_lanes(log_level="info", access_log=True):
        capfd.readouterr()
        post(server, key, body_of())
        post(server, key, body_of(), **{"X-Forwarded-For": "203.0.113.7"})  # from 127.0.0.1: trusted
        lines.append([re.sub(r":\d+ - ", " - ", line.split(":", 1)[1].strip())  # the client's port varies
                      for line in capfd.readouterr().out.splitlines() if '"POST ' in line])

    express, plain = lines
    assert express == plain and len(express) == 2
    assert express == ['127.0.0.1 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
                       '203.0.113.7 - "POST /v1/chat/completions HTTP/1.1" 200 OK']


def _event_shape(content: bytes) -> list:
    return [event if event == b"data: [DONE]" else sorted(json.loads(event[len(b"data: "):]))
            for event in content.split(b"\n\n") if event]


def _answer_shape(content: bytes) -> tuple:
    answer = json.loads(content)
    return sorted(answer), answer["choices"], answer["usage"]


def test_the_lane_writes_the_head_and_the_body_at_once_and_keeps_the_connection(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    with socket.create_connection((LOOPBACK, router.port), timeout=SOCKET_TIMEOUT_S) as sock:
        for _ in range(2):  # the second request on the same connection
            sock.sendall(raw_post(key, body_of()))
            received = sock.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and len(body) == length
            assert json.loads(body)["usage"]["completion_tokens"] == 4


def test_pipelined_requests_are_answered_in_order(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    first, second = raw_post(key, body_of(max_tokens=2)), raw_post(key, body_of(max_tokens=3), extra="Connection: close\r\n")

    received = exchange(router, first + second)

    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert received.index(b'"completion_tokens": 2') < received.index(b'"completion_tokens": 3')
    assert received.rstrip().endswith(b"}")


def test_http_1_0_and_connection_close_are_answered_then_closed(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    for raw in (raw_post(key, body_of(), version="1.0"), raw_post(key, body_of(), extra="Connection: close\r\n"),
                raw_post(key, body_of(stream=True), extra="Connection: close\r\n")):
        received = exchange(router, raw)  # returns once the server closed the connection
        assert received.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nconnection: close\r\n" in received
        assert received.rstrip().endswith((b"}", b"data: [DONE]", b"0"))


def test_what_the_lane_leaves_to_uvicorn_is_answered_all_the_same(engines, start_router):
    engines()
    key = client_key()
    router = start_router(config=router_config(max_body_bytes=1024))
    body = body_of()

    with_query = exchange(router, raw_post(key, body, path="/v1/chat/completions?x=1", extra="Connection: close\r\n"))
    chunked = exchange(router, (f"POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\nAuthorization: Bearer {key}\r\n"
                                f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len(body):x}\r\n").encode()
                       + body + b"\r\n0\r\n\r\n")
    continued = exchange(router, raw_post(key, body, extra="Expect: 100-continue\r\nConnection: close\r\n"))
    too_big = post(router, key, body_of(messages=[{"role": "user", "content": "x" * 2048}]))

    for received in (with_query, chunked):
        assert received.startswith(b"HTTP/1.1 200 OK\r\n") and b'"completion_tokens": 4' in received
    assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"


def test_a_router_failure_outside_its_own_handling_is_a_500(engines, start_router, monkeypatch, capfd):
    engines()
    key = client_key()
    router = start_router()

    async def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(router.app, "serve_call", broken)
    monkeypatch.setattr(direct, "serve", lambda app, exchange: False)  # the task's path, not the direct lane's
    received = exchange(router, raw_post(key, body_of()))

    assert received.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert "Exception in ASGI application" in capfd.readouterr().err  # uvicorn's error log, as for any app


def test_a_failure_of_the_direct_lane_is_answered(engines, start_router, monkeypatch, capfd):
    engines()
    key = client_key()
    router = start_router()

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(direct, "serve", broken)
    assert post(router, key, body_of()).status_code == 200  # failed before it began: the task serves it
    assert "the router's direct lane failed" in capfd.readouterr().err

    monkeypatch.undo()
    monkeypatch.setattr(direct, "relay_lines", broken)  # fails once the engine answered: a 500, as RouterApp's
    answer = post(router, key, body_of())
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "router_error"
    router.stop()
    assert RequestTrace.objects.filter(status_code=500, outcome=RequestTrace.Outcome.UPSTREAM_ERROR).count() == 1


def test_every_express_request_is_traced(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    for body in (body_of(), body_of(stream=True), b"{not json"):
        post(router, key, body)
    router.stop()

    assert sorted(RequestTrace.objects.values_list("status_code", "stream")) == [(200, False), (200, True),
                                                                              (400, False)]


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout_and_a_busy_one_is_not(engines, seed):
    engines()
    key = client_key()
    app = RouterApp(TEST_CONFIG)
    router = UvicornThread(app, http=router_protocol(app), timeout_keep_alive=0.6).start()
    try:
        with socket.create_connection((LOOPBACK, router.port), timeout=SOCKET_TIMEOUT_S) as sock:
            for request in range(4):  # in use across the first timer (armed after the first answer)
                if request:
                    time.sleep(0.25)
                sock.sendall(raw_post(key, body_of()))
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
            sock.settimeout(0.3)  # less than the keep-alive: still open
            with pytest.raises(TimeoutError):
                sock.recv(1)
            sock.settimeout(SOCKET_TIMEOUT_S)
            idle_from = time.monotonic()
            assert sock.recv(1) == b""  # closed by the router
            assert time.monotonic() - idle_from >= 0.1
    finally:
        router.stop()
