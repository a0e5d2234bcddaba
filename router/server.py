"""The data plane's express lane: uvicorn's HTTP protocol (httptools), which hands a generation request
(`POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`) to the router as soon as its body is in,
without the ASGI request cycle around it.

Under bench/router.py, uvicorn's request cycle (the scope, an event per message, the middleware that reads
proxy headers, header validation by regular expression, the head and the body written apart) cost about as
much CPU as the router's own work. A generation request needs none of it: the router reads its key,
session and body, and its answers carry headers it made itself or the engine's content type, which the
client parser already checked. So such a request goes straight to `RouterApp.serve_call`, through an
`Exchange` that speaks the ASGI `send`/`receive` messages the router writes (so every path behind it,
holds, retries, streams, errors and traces, is the one the ASGI app runs) and writes the head and the
first body chunk in one call.

Everything else takes uvicorn's own path unchanged: other methods and paths (`/v1/models`, Django,
heartbeats), a query string or an escaped path, `Expect: 100-continue`, an upgrade, a body without
Content-Length (chunked) or larger than the router's limit (its 413 is answered before the rest is
read), a request pipelined behind another, and servers run with a concurrency limit.

Serve it with `uvicorn --http inventiv.asgi:HttpProtocol` (README, Running it); `router_protocol()` makes
the class for any RouterApp (the tests').
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr

from router import direct
from router.asgi import RouterApp
from router.calls import ROUTES

log = logging.getLogger("uvicorn.error")

EXPRESS_PATHS = {path.encode(): path for path in ROUTES}
POST = b"POST"
CONTENT_LENGTH = b"content-length"
TRANSFER_ENCODING = b"transfer-encoding"
CHUNKED_END = b"0\r\n\r\n"
CLOSE_LINE = b"connection: close\r\n"
CHUNKED_LINE = b"transfer-encoding: chunked\r\n"
DISCONNECT = {"type": "http.disconnect"}
INTERNAL_ERROR = (b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error")


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared body size, or None when the body is chunked or its size unclear."""
    length = None
    for name, value in headers:
        if name == CONTENT_LENGTH:
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == TRANSFER_ENCODING:
            return None
    return length


class Exchange:
    """One express request: its body as it arrives, and the ASGI `send`/`receive` the router answers
    through. It stands where uvicorn's protocol keeps its request cycle, so the protocol's own handling
    of a lost connection, a shutdown and a pipelined request applies to it as to any cycle."""

    __slots__ = ("protocol", "path", "headers", "chunks", "keep_alive", "disconnected", "response_started",
                 "response_complete", "client", "_status", "_head_headers", "_chunked", "_gone")

    def __init__(self, protocol: RouterProtocol, path: str, headers: list, keep_alive: bool) -> None:
        self.protocol = protocol
        self.path = path
        self.headers = headers
        self.chunks: list[bytes] = []
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.client = ""  # as the access log names it
        self._status = 0
        self._head_headers = ()
        self._chunked = False
        self._gone: list[asyncio.Future] = []

    # What the protocol calls
    @property
    def message_event(self) -> Exchange:
        """uvicorn's protocol calls `cycle.message_event.set()` when the connection is lost. (A property, not
        an attribute: an exchange that held itself would wait for the garbage collector to be freed.)"""
        return self

    def set(self) -> None:
        """The connection was lost, or the answer is complete: every waiting `receive()` returns."""
        waiters, self._gone = self._gone, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def body(self) -> bytes:
        """The request's body, joined once."""
        if len(self.chunks) != 1:
            self.chunks = [b"".join(self.chunks)]
        return self.chunks[0]

    async def run(self) -> None:
        body = self.body()
        self.chunks = []
        if self.protocol.access_log:
            self.client = await _client_as_logged(self.protocol, self.headers)
        await self.guard(self.protocol.router.serve_call(self.path, self.headers, body, self.send, self.receive))

    def spawn(self, answering: Coroutine) -> None:
        """Answer on a task of the protocol's (which a shutdown waits for), as `run` does (router/direct.py)."""
        task = self.protocol.loop.create_task(self.guard(answering))
        task.add_done_callback(self.protocol.tasks.discard)
        self.protocol.tasks.add(task)

    async def guard(self, answering: Coroutine) -> None:
        try:
            await answering
        except BaseException as exc:  # noqa: BLE001 - what uvicorn does when an ASGI app raises
            log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.disconnected:
                if not self.response_started or self._status:  # nothing written yet: a 500
                    self.protocol.transport.write(INTERNAL_ERROR)
                self.protocol.transport.close()
        else:
            if not self.response_complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                self.protocol.transport.close()

    # ASGI
    async def receive(self) -> dict:
        """The body was read whole before the router started: what comes next is the client leaving (or
        the answer being complete), as uvicorn's `receive` says it."""
        if not self.disconnected and not self.response_complete:
            # One future per call: a caller that cancels its wait cancels only its own.
            waiter = self.protocol.loop.create_future()
            self._gone.append(waiter)
            await waiter
        return DISCONNECT

    async def send(self, message: dict) -> None:
        protocol = self.protocol
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
            # The head waits for the first body chunk, to leave in one write with it (ASGI lets a server
            # hold the head until then).
            self.response_started = True
            self._status = message["status"]
            self._head_headers = message.get("headers", ())
            return
        if self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
        self._write(message.get("body", b""), message.get("more_body", False))

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The whole answer at once, from a callback (router/direct.py): what `send` writes for a start
        and a last body message."""
        if self.disconnected:
            return
        self.response_started = True
        self._status, self._head_headers = status, headers
        self._write(body, False)

    def respond_relayed(self, status: int, lines: bytes, body: bytes) -> bool:
        """The whole answer at once, from a callback (router/direct.py), its headers given as ready lines
        (router/proxy.py `relay_lines`, which sizes the body): the head joined from cached parts instead of
        built header by header. False, with nothing written, where `respond` must write it (an access log
        to write, or server headers that size or close the answer)."""
        if self.disconnected:
            return True
        protocol = self.protocol
        defaults = _server_lines(protocol.server_state.default_headers)
        if defaults is None or protocol.access_log:
            return False
        self.response_started = True
        close = b"" if self.keep_alive else CLOSE_LINE
        protocol.transport.write(b"%b%b%b%b\r\n%b" % (STATUS_LINE[status], defaults, lines, close, body))
        self._complete()
        return True

    def _write(self, body: bytes, more: bool) -> None:
        protocol = self.protocol
        out = self._head() if self._status else b""
        if self._chunked:
            if body:
                out += b"%x\r\n%b\r\n" % (len(body), body)
            if not more:
                out += CHUNKED_END
        else:
            out += body
        if out:
            protocol.transport.write(out)
        if not more:
            self._complete()

    def _complete(self) -> None:
        """The answer's last byte is written: waiters released, the connection closed or ready for the next."""
        self.response_complete = True
        self.set()
        if not self.keep_alive:
            self.protocol.transport.close()
        self.protocol.on_response_complete()

    def _head(self) -> bytes:
        """The status line and headers: the server's own (date, server) first, as uvicorn writes them."""
        status, self._status = self._status, 0
        protocol = self.protocol
        if protocol.access_log:
            protocol.access_logger.info('%s - "%s %s HTTP/%s" %d', self.client, "POST", self.path,
                                        protocol.parser.get_http_version(), status)
        lines = [STATUS_LINE[status]]
        sized = False
        for name, value in (*protocol.server_state.default_headers, *self._head_headers):
            if name == CONTENT_LENGTH:
                sized = True
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
                continue
            lines.append(b"%b: %b\r\n" % (name, value))
        if not self.keep_alive:
            lines.append(CLOSE_LINE)
        if not sized:
            self._chunked = True
            lines.append(CHUNKED_LINE)
        lines.append(b"\r\n")
        return b"".join(lines)


# The server's own header lines (uvicorn's date, remade every second, and configured headers), joined once
# per list uvicorn makes; None when they size the answer or close the connection (`_head` handles those).
_server_lines_of: tuple[list, bytes | None] = ([], b"")


def _server_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    global _server_lines_of
    of, lines = _server_lines_of
    if of is not headers:
        plain = all(name not in (CONTENT_LENGTH, TRANSFER_ENCODING, b"connection") for name, _ in headers)
        lines = b"".join(b"%b: %b\r\n" % header for header in headers) if plain else None
        _server_lines_of = (headers, lines)
    return lines


async def _client_as_logged(protocol: RouterProtocol, headers: list) -> str:
    """The client as uvicorn's access log names it: the peer, or who it forwards for when uvicorn trusts
    it to say (its proxy-headers middleware, run on a scope of the request's headers)."""
    scope = {"type": "http", "client": protocol.client, "scheme": protocol.scheme, "headers": headers}
    config = protocol.config
    if config.proxy_headers:
        middleware = _PROXY_HEADERS.get(id(config))
        if middleware is None:
            middleware = _PROXY_HEADERS[id(config)] = ProxyHeadersMiddleware(_nothing, config.forwarded_allow_ips)
        await middleware(scope, _nothing, _nothing)
    return get_client_addr(scope)


async def _nothing(*args) -> None:
    return None


_PROXY_HEADERS: dict[int, ProxyHeadersMiddleware] = {}


class RouterProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the express lane; `router` is the RouterApp it hands requests to."""

    router: RouterApp
    # When the connection last went idle (its answer complete, nothing pipelined); None while a request is
    # read or answered. See on_response_complete.
    _idle_since: float | None = None

    def on_message_begin(self) -> None:
        # uvicorn builds the request's ASGI scope here; only the requests its own path takes need one.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        express = self._express_path()
        if express is None:
            url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()  # the scope, now that uvicorn's path takes the request
            self.url, self.headers, self.expect_100_continue = url, headers, expect_100_continue
            self.scope["headers"] = headers
            super().on_headers_complete()
            return
        parser = self.parser
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        self.cycle = Exchange(self, express, self.headers, keep_alive)  # type: ignore[assignment]

    def _express_path(self) -> str | None:
        path = EXPRESS_PATHS.get(self.url)
        if path is None or self.expect_100_continue or self.limit_concurrency is not None:
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind a request still being answered: uvicorn queues it
        if self.parser.get_method() != POST or self.parser.should_upgrade():
            return None
        length = _content_length(self.headers)
        if length is None or length > self.router.config.max_body_bytes:
            return None
        return path

    # Keep-alive. uvicorn arms a timer after every answer and cancels it at the next request's first bytes:
    # a timer made and unmade per request. Here one timer per idle period looks at when the connection
    # went idle, and waits on for the rest when it was busy meanwhile: the same closing time, one timer
    # per keep-alive period at most.
    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def on_response_complete(self) -> None:
        # uvicorn's, but for the timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_check)

    def _keep_alive_check(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # busy: its answer arms the timer again
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_check)
        else:
            self.timeout_keep_alive_handler()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if type(cycle) is Exchange:
            cycle.chunks.append(body)  # at most max_body_bytes: Content-Length said so
        else:
            super().on_body(body)

    def _served_directly(self, cycle: Exchange) -> bool:
        """The direct lane took the request (router/direct.py). Should it fail before it sent anything (a bug:
        its own errors it hands to the task), the task answers, as it would any request."""
        try:
            return direct.serve(self.router, cycle)
        except Exception:  # noqa: BLE001 - raised inside the HTTP parser's callback, it would read as a bad request
            log.exception("the router's direct lane failed on %s", cycle.path)
            return False

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if type(cycle) is not Exchange:
            super().on_message_complete()
            return
        if not self.access_log and self._served_directly(cycle):
            return
        task = self.loop.create_task(cycle.run())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


def router_protocol(router: RouterApp) -> type[RouterProtocol]:
    """The protocol class that hands express requests to `router` (pass it as uvicorn's `http`)."""
    return type("RouterHttpProtocol", (RouterProtocol,), {"router": router})
