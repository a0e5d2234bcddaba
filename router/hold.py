"""Scale from zero: a request for a model with no routable instance, whose pool may grow, waits for an
instance instead of getting a 503 at once (README, Autoscaling: scale from zero).

The wait is bounded twice: each pool holds at most `queue_size` requests (the next gets a 429 at once),
each for at most `hold_timeout_s` (then a 503); both say when to retry. A held request that gets an
instance is forwarded as any other, retries and breakers included. Its client hanging up frees its place.

A held stream is answered at once: the 200 and its SSE headers, then a comment line every
`hold_keepalive_s` so that the client and the proxies between see a live connection, for the minutes a
GPU machine takes to boot. What cannot be a status any more (the hold timed out, every instance failed)
ends the stream with an OpenAI-shaped error event and `[DONE]`, as a stream broken midway does. A
non-streamed request hears nothing until its answer.
"""

from __future__ import annotations

import asyncio
import json

from router import errors
from router.calls import Call
from router.runtime import RouterRuntime
from router.streams import DONE_EVENT
from router.table import Candidate
from router.usage import TraceRecord

KEEPALIVE_COMMENT = b": keep-alive\n\n"
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
MAX_ERROR_EXCERPT = 200


class ClientLeft(Exception):
    """The client hung up while its request was held."""


async def hold(runtime: RouterRuntime, call: Call, trace: TraceRecord, stream: HeldStream | None,
               receive) -> tuple[Candidate, ...]:
    """Wait until `call.model` has routable instances and return them. Raises ApiError: 503 when its
    pool cannot hold it (or none serves the model), or the hold timed out; 429 when the pool's queue is
    full. Raises ClientLeft when the client hung up. `stream` (streamed calls): opened when held."""
    config = runtime.config
    pool = runtime.pools.get(call.model)
    if pool is None or not pool.holds:
        raise errors.no_instance(call.model, retry_after_s=config.no_instance_retry_after_s)
    holds = runtime.holds
    if not await holds.enter(call.model, pool):
        trace.error_message = f"pool {pool.pool} already holds {pool.queue_size} requests"
        raise errors.hold_queue_full(call.model, retry_after_s=config.no_instance_retry_after_s)
    loop = asyncio.get_running_loop()
    held_at = loop.time()
    deadline = held_at + pool.hold_timeout_s
    gone = asyncio.ensure_future(receive())  # the request was read whole: what comes next is a disconnect
    try:
        if stream is not None:
            await stream.open()
        while True:
            candidates = runtime.table.routable.get(call.model)
            if candidates:
                return candidates
            if call.model not in runtime.pools:
                trace.error_message = f"pool {pool.pool} left the pool directory while the request was held"
                raise errors.no_instance(call.model, retry_after_s=config.no_instance_retry_after_s)
            remaining = deadline - loop.time()
            if remaining <= 0:
                trace.error_message = (f"held {pool.hold_timeout_s:g} s for pool {pool.pool}: "
                                       "no instance became ready")
                raise errors.hold_timeout(call.model, waited_s=pool.hold_timeout_s,
                                          retry_after_s=config.no_instance_retry_after_s)
            woken = asyncio.ensure_future(holds.waker(call.model).wait())
            wait_s = remaining if stream is None else min(remaining, config.hold_keepalive_s)
            try:
                done, _ = await asyncio.wait((woken, gone), timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
            if gone in done:
                raise ClientLeft
            if not done and stream is not None and deadline > loop.time():
                await stream.keep_alive()
    finally:
        gone.cancel()
        holds.leave(call.model, pool.pool_id)
        trace.held_ms = (loop.time() - held_at) * 1000


class HeldStream:
    """The `send` of a streamed call that may be held. Until `open()` it passes every message through.
    Once open (the 200 and SSE headers went out), an engine's SSE answer passes through without its own
    start message, and any other answer, the router's error or the engine's, becomes an error event."""

    def __init__(self, send) -> None:
        self._send = send
        self.opened = False
        self.closed = False
        # The status of a non-SSE answer being collected, to be turned into an error event.
        self._failed_status: int | None = None
        self._failed_body: list[bytes] = []

    async def open(self) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        # An empty chunk: a server that holds the head until the body (router/server.py) sends it now.
        await self._send({"type": "http.response.body", "body": b"", "more_body": True})
        self.opened = True

    async def keep_alive(self) -> None:
        await self._send({"type": "http.response.body", "body": KEEPALIVE_COMMENT, "more_body": True})

    async def __call__(self, message: dict) -> None:
        if not self.opened:
            await self._send(message)
            return
        if self.closed:
            return
        if message["type"] == "http.response.start":
            sse = any(name == b"content-type" and value.startswith(b"text/event-stream")
                      for name, value in message.get("headers", ()))
            self._failed_status = None if message["status"] == 200 and sse else message["status"]
            return
        more = message.get("more_body", False)
        self.closed = not more
        if self._failed_status is None:
            await self._send(message)
            return
        self._failed_body.append(message.get("body", b""))
        if not more:
            event = error_event(self._failed_status, b"".join(self._failed_body))
            await self._send({"type": "http.response.body", "body": event, "more_body": False})


def error_event(status: int, body: bytes) -> bytes:
    """An answer that cannot be sent as one any more, as the last event of a stream: its own OpenAI-shaped
    error when it has one, else one made of its status and first bytes."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not (isinstance(payload, dict) and isinstance(payload.get("error"), dict)):
        excerpt = body[:MAX_ERROR_EXCERPT].decode(errors="replace")
        payload = errors.ApiError(status, f"The instance answered {status} {excerpt}".rstrip(),
                                  type=errors.UPSTREAM, code="upstream_error").payload()
    return b"data: " + json.dumps(payload).encode() + b"\n\n" + DONE_EVENT
