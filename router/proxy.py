"""Forwarding one call to an engine and relaying its answer: selection, retries, streaming.

A call is retried on another instance (at most `max_attempts` in all) when the connection fails or the
engine answers 5xx (or rejects the router's engine key) before anything reached the client. Once the
first byte went out, a failure can only end the stream: with an SSE error event and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

from router import errors, upstream
from router.calls import Call
from router.models import RequestTrace
from router.runtime import RouterRuntime
from router.streams import DONE_EVENT, SseRelay, usage_from_json
from router.table import Candidate
from router.usage import TraceRecord

Picked = tuple[Candidate, str]  # an instance and why (router/balancer.py)
Outcome = RequestTrace.Outcome
# What fails a connection or a read: refused, reset, closed early, timed out.
UPSTREAM_ERRORS = (*upstream.UPSTREAM_ERRORS, asyncio.TimeoutError)
# The engine rejecting the router's own key is the router's (or the instance's) fault, not the client's.
RETRYABLE_CLIENT_STATUSES = frozenset({401, 403})
SSE_CONTENT_TYPE = b"text/event-stream"
JSON_CONTENT_TYPE = b"application/json"
SSE_HEADERS = ((b"content-type", SSE_CONTENT_TYPE), (b"cache-control", b"no-cache"))
# The route reason header of each reason, made once.
REASON_HEADERS: dict[str, tuple[bytes, bytes]] = {}
MAX_ERROR_EXCERPT = 200
# The route headers' lines of each instance and reason, made once (instances come and go: bounded).
ROUTE_LINES: dict[tuple[str, str], bytes] = {}
MAX_ROUTE_LINES = 10_000


async def forward(runtime: RouterRuntime, candidates: Sequence[Candidate], call: Call, trace: TraceRecord,
                  send, receive, started: float, *, first: Picked | None = None, tried: Sequence[str] = ()) -> None:
    """Answer `call` from one of `candidates` (the model's routable instances), filling `trace`. Raises
    ApiError when no answer could be relayed. The direct lane (router/direct.py) hands over a call it began:
    `first`, the instance it picked but could not send to at once; `tried`, the instance that failed it."""
    balancer = runtime.balancer
    tried = list(tried)
    for attempt in range(len(tried), runtime.config.max_attempts):
        if first is not None:
            picked, first = first, None
        else:
            picked = balancer.pick(candidates, session_id=call.session_id, prefix=call.prefix, exclude=tried)
        if picked is None:
            break
        candidate, reason = picked
        trace.instance_id, trace.route_reason, trace.retries = candidate.instance_id, reason, attempt
        balancer.started(candidate.instance_id)
        try:
            if await _attempt(runtime, candidate, reason, call, trace, send, receive, started):
                return
        finally:
            balancer.finished(candidate.instance_id)
        tried.append(candidate.instance_id)
    if not tried:
        # Every instance's breaker is open: nothing was even tried.
        wait = runtime.breakers.retry_after_s([c.instance_id for c in candidates])
        raise errors.no_instance(call.model, retry_after_s=wait or runtime.config.no_instance_retry_after_s)
    raise errors.upstream_failed(
        f"The model `{call.model}` failed on {len(tried)} instance(s); last error: {trace.error_message}"
    )


async def _attempt(runtime: RouterRuntime, candidate: Candidate, reason: str, call: Call, trace: TraceRecord,
                   send, receive, started: float) -> bool:
    """One try on one instance: True once an answer was relayed, False to try another instance."""
    instance_id = candidate.instance_id
    try:
        response = await runtime.upstream.post(candidate.endpoint, call.path_bytes, call.body)
    except UPSTREAM_ERRORS as exc:
        return failed(runtime, instance_id, trace, f"connecting failed: {describe(exc)}")
    try:
        status = response.status
        if instance_failed(status):
            try:
                excerpt = await response.read()
            except UPSTREAM_ERRORS:
                excerpt = b""
            return failed_answer(runtime, instance_id, trace, status, excerpt)
        content_type = response.content_type or JSON_CONTENT_TYPE
        if call.stream and status == 200 and content_type.startswith(SSE_CONTENT_TYPE):
            return await _relay_stream(runtime, response, candidate, reason, call, trace, send, receive, started)
        try:
            body = await response.read()
        except UPSTREAM_ERRORS as exc:
            return failed(runtime, instance_id, trace, f"reading the answer failed: {describe(exc)}")
        headers = answered(runtime, candidate, reason, trace, status, content_type, body, started)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
    finally:
        response.release()


def instance_failed(status: int) -> bool:
    """An answer that counts against the instance (and is retried on another): a 5xx, or its engine key refused."""
    return status >= 500 or status in RETRYABLE_CLIENT_STATUSES


def failed_answer(runtime: RouterRuntime, instance_id: str, trace: TraceRecord, status: int, body: bytes) -> bool:
    excerpt = body[:MAX_ERROR_EXCERPT].decode(errors="replace")
    return failed(runtime, instance_id, trace, f"the instance answered {status} {excerpt}".rstrip())


def answered(runtime: RouterRuntime, candidate: Candidate, reason: str, trace: TraceRecord, status: int,
             content_type: bytes, body: bytes, started: float) -> list[tuple[bytes, bytes]]:
    """A whole (non-streamed) answer to relay: the instance's success and the trace noted; its headers."""
    trace.latency_ms = (time.perf_counter() - started) * 1000
    note_answered(runtime, candidate.instance_id, trace, status, body)
    return relay_headers(candidate, reason, content_type, len(body))


def relay_headers(candidate: Candidate, reason: str, content_type: bytes, length: int) -> list[tuple[bytes, bytes]]:
    """The headers of a whole answer relayed from `candidate`."""
    return [(b"content-type", content_type), (b"content-length", b"%d" % length), *_route_headers(candidate, reason)]


def relay_lines(candidate: Candidate, reason: str, content_type: bytes, length: int) -> bytes:
    """`relay_headers` as the header lines of an answer's head (router/server.py `respond_relayed`)."""
    route = ROUTE_LINES.get((candidate.instance_id, reason))
    if route is None:
        if len(ROUTE_LINES) >= MAX_ROUTE_LINES:
            ROUTE_LINES.clear()
        route = ROUTE_LINES[(candidate.instance_id, reason)] = b"".join(
            b"%b: %b\r\n" % header for header in _route_headers(candidate, reason))
    return b"content-type: %b\r\ncontent-length: %d\r\n%b" % (content_type, length, route)


def note_answered(runtime: RouterRuntime, instance_id: str, trace: TraceRecord, status: int, body: bytes) -> None:
    """A whole answer relayed (or about to be): the instance's success, the trace's outcome and tokens.
    The direct lane (router/direct.py) notes it once the client's answer is written."""
    runtime.breakers.record_success(instance_id)
    trace.status_code = status
    if status < 400:
        trace.outcome = Outcome.OK
        usage = usage_from_json(body)
        if usage is not None:
            trace.prompt_tokens, trace.completion_tokens = usage
    else:
        # The engine refused the request itself (a bad parameter): the client's to fix.
        trace.outcome = Outcome.CLIENT_ERROR
        trace.error_message = body[:MAX_ERROR_EXCERPT].decode(errors="replace")


async def _relay_stream(runtime: RouterRuntime, response: upstream.Response, candidate: Candidate,
                        reason: str, call: Call, trace: TraceRecord, send, receive, started: float) -> bool:
    instance_id = candidate.instance_id
    relay = SseRelay(strip_usage=call.strip_usage)
    first = b""
    try:
        # The client hears nothing until the engine sent a whole event: until then, a retry is invisible.
        while not first:
            chunk = await response.readany()
            if not chunk:
                response.close()
                return failed(runtime, instance_id, trace, "the stream ended before its first event")
            first = relay.feed(chunk)
    except UPSTREAM_ERRORS as exc:
        response.close()
        return failed(runtime, instance_id, trace, f"the stream failed before its first event: {describe(exc)}")
    runtime.breakers.record_success(instance_id)
    trace.status_code = 200
    trace.outcome = Outcome.OK
    await send({"type": "http.response.start", "status": 200,
                "headers": [*SSE_HEADERS, *_route_headers(candidate, reason)]})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    trace.ttft_ms = (time.perf_counter() - started) * 1000
    # The client may hang up mid-stream: then stop reading the engine (which frees its slot).
    disconnected = asyncio.ensure_future(receive())
    broken = None
    try:
        while True:
            if disconnected.done():
                trace.outcome = Outcome.CLIENT_DISCONNECTED
                response.close()
                break
            try:
                chunk = await response.readany()
            except UPSTREAM_ERRORS as exc:
                broken = f"the instance's stream broke: {describe(exc)}"
                break
            if not chunk:
                if not relay.done:
                    broken = "the instance ended the stream before [DONE]"
                break
            out = relay.feed(chunk)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
    finally:
        disconnected.cancel()
    tail = relay.leftover()
    if broken is not None:
        response.close()
        runtime.breakers.record_failure(instance_id)
        trace.outcome, trace.error_message = Outcome.STREAM_BROKEN, broken
        error = errors.ApiError(502, broken, type=errors.UPSTREAM, code="stream_broken")
        tail += b"data: " + json.dumps(error.payload()).encode() + b"\n\n" + DONE_EVENT
    if relay.usage is not None:
        trace.prompt_tokens, trace.completion_tokens = relay.usage
    trace.latency_ms = (time.perf_counter() - started) * 1000
    await send({"type": "http.response.body", "body": tail, "more_body": False})
    return True


def failed(runtime: RouterRuntime, instance_id: str, trace: TraceRecord, message: str) -> bool:
    runtime.breakers.record_failure(instance_id)
    trace.error_message = f"instance {instance_id}: {message}"
    return False


def _route_headers(candidate: Candidate, reason: str) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    header = REASON_HEADERS.get(reason)
    if header is None:
        header = REASON_HEADERS[reason] = (b"x-inventiv-route-reason", reason.encode())
    return candidate.instance_header, header


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
