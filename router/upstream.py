"""The router's HTTP/1.1 client to engines: keep-alive connections, one write per request, responses
parsed by httptools (the parser uvicorn uses on the client side).

A general client (aiohttp's) builds header multidicts, payload objects, timers and traces for every
request: under bench/router.py that was the largest share of the router's own CPU. The router needs one
shape of request (a POST with a JSON body, a few fixed headers per engine) and reads a status, the
content type and the body, so each engine's request head is built once (`Endpoint`) and a request is
one `transport.write`.

Connections are kept per engine and reused while idle for less than `keepalive_s` (shorter than the
engine's own keep-alive, so a pooled connection is rarely found closed). A reused connection that
fails before any answer came (the engine closed it meanwhile: it never read the request) is retried
once on a fresh one. Reading pauses while a slow client leaves more than MAX_BUFFERED bytes unread.

Two ways to ask: `post()` awaits the answer's head (a task reads the body with `read()`/`readany()`);
`send_now()` (router/direct.py) writes the request on an idle pooled connection and calls the
response's `on_done` from the connection's own callbacks once the answer is complete or failed, with no
task, future or timer per request: one sweep per pool (every SWEEP_S at most) fails those answers whose
engine sent nothing within the read timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools

MAX_BUFFERED = 1 << 20
# The sweep of `send_now()` answers runs this often (a quarter of the read timeout when that is shorter):
# such an answer times out between read_timeout_s and read_timeout_s + SWEEP_S after the engine's last byte.
SWEEP_S = 1.0
CONTENT_TYPE = b"content-type"


class UpstreamError(Exception):
    """Connecting to the engine or reading its answer failed."""


class UpstreamTimeout(UpstreamError):
    pass


UPSTREAM_ERRORS = (UpstreamError, OSError)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An engine's address and the head every request to it carries."""

    host: str
    port: int
    # `Host`, `Authorization` and `Content-Type` lines, ready to send.
    head: bytes = field(repr=False)

    @classmethod
    def of(cls, host: str, port: int, authorization: str) -> Endpoint:
        lines = [f"Host: {host}:{port}", "Content-Type: application/json"]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        return cls(host=host.strip("[]"), port=port, head="".join(f"{line}\r\n" for line in lines).encode("latin-1"))


class Response:
    """One answer: `status` and `content_type` (bytes, as sent) once `post()` returned; the body by `read()` (all of
    it) or `readany()` (what came so far; b"" at the end). `release()` when done with it: the connection
    goes back to the pool if the answer was read whole, else it is closed."""

    __slots__ = ("status", "content_type", "on_done", "_connection", "_chunks", "_buffered", "_complete", "_error",
                 "_waiter")

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.content_type = b""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        # send_now(): called once, with None when the answer is complete or with the error that ended it.
        self.on_done: Callable[[BaseException | None], None] | None = None

    async def read(self) -> bytes:
        while not self._complete:
            await self._wait()
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    async def readany(self) -> bytes:
        while not self._chunks and not self._complete:
            await self._wait()
        if not self._chunks:
            return b""
        chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._connection.resume()
        return chunk

    def release(self) -> None:
        if self._connection.response is self:
            self._connection.finish(reusable=self._complete)

    def close(self) -> None:
        if self._connection.response is self:
            self._connection.finish(reusable=False)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self._connection.loop.create_future()
        timer = self._connection.loop.call_later(self._connection.read_timeout_s, self._timed_out, self._waiter)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    @staticmethod
    def _timed_out(waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(UpstreamTimeout("the engine sent nothing within the read timeout"))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def body(self) -> bytes:
        """The whole answer, once complete (send_now's `on_done(None)`)."""
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    def _done(self, error: BaseException | None) -> None:
        on_done = self.on_done
        if on_done is not None:
            self.on_done = None
            self._connection.pool.untime(self._connection)
            on_done(error)

    def _fail(self, error: BaseException) -> None:
        if not self._complete and self._error is None:
            self._error = error
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
            self._done(error)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, pool: UpstreamPool, endpoint: Endpoint) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.loop = pool.loop
        self.read_timeout_s = pool.read_timeout_s
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.headers_ready: asyncio.Future | None = None
        self.idle_since = 0.0
        # send_now(): when the sweep fails the answer unless the engine sends more first.
        self.deadline = 0.0
        self.keep_alive = False
        self.closed = False
        self.paused = False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.deadline:
            self.deadline = self.loop.time() + self.read_timeout_s
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(UpstreamError(f"the engine's answer is not valid HTTP: {exc}"))

    def eof_received(self) -> None:
        self._broken(UpstreamError("the engine closed the connection"))

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.pool.forget(self)
        self._broken(UpstreamError(f"the connection to the engine was lost{f': {exc}' if exc else ''}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == CONTENT_TYPE and self.response is not None:
            self.response.content_type = value

    def on_headers_complete(self) -> None:
        if self.response is None:
            return
        self.response.status = self.parser.get_status_code()
        # Read here: llhttp answers reliably only while the message is being parsed.
        self.keep_alive = self.parser.should_keep_alive()
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        response = self.response
        if response is None:
            return
        response._chunks.append(body)
        response._buffered += len(body)
        if response._buffered > MAX_BUFFERED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        response._wake()

    def on_message_complete(self) -> None:
        response = self.response
        if response is not None:
            response._complete = True
            response._wake()
            response._done(None)

    # The pool's side
    def send(self, path: bytes, body: bytes, *, headers_ready: bool = True, response: Response | None = None) -> Response:
        self.response = response = response or Response(self)
        if headers_ready:
            self.headers_ready = self.loop.create_future()
        head = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (path, self.endpoint.head, len(body))
        self.transport.write(head + body)
        return response

    def resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def finish(self, *, reusable: bool) -> None:
        if self.response is None:
            return
        self.response = None
        self.headers_ready = None
        self.deadline = 0.0
        if reusable and not self.closed and self.keep_alive:
            self.resume()
            self.idle_since = time.monotonic()
            self.pool.put_back(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def _broken(self, error: UpstreamError) -> None:
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(error)
        if self.response is not None:
            self.response._fail(error)
        self.close()


class UpstreamPool:
    """Every engine connection of one router runtime (one event loop)."""

    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float, keepalive_s: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.keepalive_s = keepalive_s
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()
        # send_now()'s connections awaiting their answer, and the task that sweeps them.
        self._timed: set[_Connection] = set()
        self._sweeper: asyncio.Task | None = None

    async def post(self, endpoint: Endpoint, path: bytes, body: bytes) -> Response:
        """Send the request and return once the answer's status line and headers are in."""
        connection = self._reuse(endpoint)
        if connection is not None:
            try:
                return await self._exchange(connection, path, body)
            except UpstreamTimeout:
                raise
            except UPSTREAM_ERRORS:
                pass  # closed by the engine while idle: it never read this request; once more, fresh
        return await self._exchange(await self._connect(endpoint), path, body)

    def send_now(self, endpoint: Endpoint, path: bytes, body: bytes,
                 on_done: Callable[[BaseException | None], None]) -> Response | None:
        """Write the request on an idle pooled connection and return its response, whose `on_done` is
        called once the answer is complete or failed; None (nothing sent) when no connection is idle."""
        connection = self._reuse(endpoint)
        if connection is None:
            return None
        response = Response(connection)
        response.on_done = on_done  # before the write, whatever the write may call back
        connection.deadline = self.loop.time() + self.read_timeout_s
        self._timed.add(connection)
        connection.send(path, body, headers_ready=False, response=response)
        if self._sweeper is None:
            self._sweeper = self.loop.create_task(self._sweep(), name="upstream-sweep")
        return response

    def untime(self, connection: _Connection) -> None:
        self._timed.discard(connection)
        connection.deadline = 0.0

    async def _sweep(self) -> None:
        interval = min(SWEEP_S, self.read_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            for connection in [each for each in self._timed if each.deadline < now]:
                connection._broken(UpstreamTimeout("the engine sent nothing within the read timeout"))

    def put_back(self, connection: _Connection) -> None:
        self._idle.setdefault((connection.endpoint.host, connection.endpoint.port), []).append(connection)

    def forget(self, connection: _Connection) -> None:
        self._all.discard(connection)
        idle = self._idle.get((connection.endpoint.host, connection.endpoint.port))
        if idle and connection in idle:
            idle.remove(connection)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self._all):
            connection.close()
        self._idle.clear()

    def _reuse(self, endpoint: Endpoint) -> _Connection | None:
        idle = self._idle.get((endpoint.host, endpoint.port))
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be closed
            if not connection.closed and now - connection.idle_since < self.keepalive_s:
                return connection
            connection.close()
        return None

    async def _connect(self, endpoint: Endpoint) -> _Connection:
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Connection(self, endpoint), endpoint.host, endpoint.port),
                self.connect_timeout_s,
            )
        except TimeoutError:
            raise UpstreamTimeout(f"connecting took more than {self.connect_timeout_s:g} s") from None
        self._all.add(connection)
        return connection

    async def _exchange(self, connection: _Connection, path: bytes, body: bytes) -> Response:
        response = connection.send(path, body)
        ready = connection.headers_ready
        timer = self.loop.call_later(self.read_timeout_s, _expire, ready)
        try:
            await ready
        except BaseException:
            connection.close()
            raise
        finally:
            timer.cancel()
        return response


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(UpstreamTimeout("the engine did not answer within the read timeout"))
