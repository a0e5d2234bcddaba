"""The data plane's ASGI application: `/v1/models`, `/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`, served beside Django (inventiv/asgi.py sends `/v1/` here) but outside its request stack.

Per request: authenticate the key against the in-memory index, read and check the body (router/calls.py),
apply the key's model list and limits (router/shared_limits.py), forward (router/proxy.py), and append a
trace for the usage writer. Nothing on this path waits for the database.

A request for a model with no routable instance is held while the model's pool grows, when it has one
that may (router/hold.py); otherwise it gets a 503 at once.

Errors are OpenAI-shaped (router/errors.py). `/v1/embeddings` serves the catalog's embedding models only,
and those serve nothing else: a 400 says so instead of whatever the engine would answer. A key not allowed to use a model gets 403
`model_not_allowed` rather than a 404 that would pretend the model does not exist: the key holder learns
why, and an operator reading traces sees the difference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime


from router import errors
from router.balancer import CACHE_AWARE
from router.calls import ROUTES, Call, parse_call
from router.config import RouterConfig, config_from_settings
from router.hold import ClientLeft, HeldStream, hold
from router.keys import BEARER, KeyEntry
from router.models import RequestTrace
from router.proxy import Picked, forward
from router.runtime import RouterRuntime
from router.usage import TraceRecord

log = logging.getLogger(__name__)

Outcome = RequestTrace.Outcome
MODELS_PATH = "/v1/models"
EMBEDDINGS_PATH = "/v1/embeddings"
OUTCOMES_BY_STATUS = {
    400: Outcome.CLIENT_ERROR, 403: Outcome.FORBIDDEN, 404: Outcome.CLIENT_ERROR, 413: Outcome.CLIENT_ERROR,
    429: Outcome.RATE_LIMITED, 502: Outcome.UPSTREAM_ERROR, 503: Outcome.NO_INSTANCE,
}
# Refusals that share a status with others but deserve their own outcome.
OUTCOMES_BY_CODE = {"hold_queue_full": Outcome.HOLD_QUEUE_FULL, "hold_timeout": Outcome.HOLD_TIMEOUT}
JSON_HEADERS = [(b"content-type", b"application/json")]
# A trace's endpoint for each generation route (the trace's time is aware UTC, as USE_TZ has it).
ENDPOINTS = {path: path.removeprefix("/v1/") for path in ROUTES}
CLIENT_CLOSED_REQUEST = 499


def _check_task(path: str, model: str, embedding_models: frozenset[str]) -> None:
    """Embeddings go to embedding models only, and embedding models answer nothing else."""
    embeds = model in embedding_models
    if path == EMBEDDINGS_PATH and not embeds:
        raise errors.not_an_embedding_model(model)
    if path != EMBEDDINGS_PATH and embeds:
        raise errors.embedding_model_only(model, path)


class ClientGone(Exception):
    """The client hung up before its request body arrived."""


class RouterApp:
    """An ASGI app; its runtime (caches, tasks, upstream connections) is made per event loop on first use."""

    def __init__(self, config: RouterConfig | None = None) -> None:
        self.config = config or config_from_settings()
        self._runtimes: dict[asyncio.AbstractEventLoop, RouterRuntime] = {}

    def runtime(self) -> RouterRuntime:
        loop = asyncio.get_running_loop()
        runtime = self._runtimes.get(loop)
        if runtime is None:
            runtime = self._runtimes[loop] = RouterRuntime.from_settings(self.config)
            runtime.start()
        return runtime

    def runtime_of(self, loop: asyncio.AbstractEventLoop) -> RouterRuntime | None:
        """The runtime of `loop`, if it has one yet (router/direct.py: a callback knows its loop)."""
        return self._runtimes.get(loop)

    def runtimes(self) -> list[RouterRuntime]:
        """The runtimes running now, one per event loop that served this app (for tests and inspection)."""
        return list(self._runtimes.values())

    async def shutdown(self) -> None:
        runtime = self._runtimes.pop(asyncio.get_running_loop(), None)
        if runtime is not None:
            await runtime.stop()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.handle(scope, receive, send)

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Serve once the first table is in (or give up waiting: the refresh keeps trying).
                if not await self.runtime().wait_loaded():
                    log.warning("the router starts without a routing table: the database did not answer")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope, receive, send) -> None:
        started = time.perf_counter()
        runtime = self.runtime()
        try:
            if not runtime.loaded and not await runtime.wait_loaded():
                raise errors.router_not_ready()
            key, session_id = read_headers(runtime, scope["headers"])
            path, method = scope["path"], scope["method"]
            if path == MODELS_PATH or path.startswith(MODELS_PATH + "/"):
                if method != "GET":
                    raise errors.method_not_allowed(method, path)
                await _send_json(send, 200, _models_answer(runtime, key, path))
                return
            if path not in ROUTES:
                raise errors.path_not_found(path)
            if method != "POST":
                raise errors.method_not_allowed(method, path)
            body = await _read_body(receive, runtime.config.max_body_bytes)
        except errors.ApiError as error:
            await _send_error(send, error)
            return
        except ClientGone:
            return
        await self._generate(runtime, path, body, key, session_id, send, receive, started)

    async def serve_call(self, path: str, headers: list[tuple[bytes, bytes]], body: bytes, send, receive) -> None:
        """A POST to one of ROUTES whose body the server read whole, within the size limit (the express
        lane, router/server.py): the checks `handle` makes, in its order, then the same generation."""
        started = time.perf_counter()
        runtime = self.runtime()
        try:
            if not runtime.loaded and not await runtime.wait_loaded():
                raise errors.router_not_ready()
            key, session_id = read_headers(runtime, headers)
        except errors.ApiError as error:
            await _send_error(send, error)
            return
        await self._generate(runtime, path, body, key, session_id, send, receive, started)

    async def continue_call(self, runtime: RouterRuntime, call: Call, trace: TraceRecord, key: KeyEntry, send,
                            receive, started: float, *, first: Picked | None = None, tried: Sequence[str] = ()) -> None:
        """A call the direct lane (router/direct.py) admitted (its key has no limits), taken on: from the start of
        its routing, from the instance it picked (`first`), or after the one that failed it (`tried`)."""
        await self._generate(runtime, call.path, call.body, key, call.session_id, send, receive, started,
                             admitted=(call, trace), first=first, tried=tried)

    async def _generate(self, runtime: RouterRuntime, path: str, body: bytes, key: KeyEntry,
                        session_id: str | None, send, receive, started: float, *,
                        admitted: tuple[Call, TraceRecord] | None = None, first: Picked | None = None,
                        tried: Sequence[str] = ()) -> None:
        call, trace = admitted or (None, new_trace(key, path))
        held: HeldStream | None = None
        try:
            if call is None:
                call = admit(runtime, path, body, key, session_id, trace)
                refused = await runtime.limits.admit(key) if key.is_limited else None
                if refused is not None:
                    limit, wait = refused
                    raise errors.rate_limited(f"This API key reached its {limit} limit; retry in {wait:.0f} s.",
                                              retry_after_s=wait)
            candidates = runtime.table.routable.get(call.model)
            if candidates is None:
                if call.stream:
                    # Once held, the stream's 200 is out: what follows, errors included, goes through it.
                    send = held = HeldStream(send)
                candidates = await hold(runtime, call, trace, held, receive)
            await forward(runtime, candidates, call, trace, send, receive, started, first=first, tried=tried)
        except errors.ApiError as error:
            trace.status_code = 200 if held is not None and held.opened else error.status
            trace.outcome = _outcome_of(error)
            trace.error_message = trace.error_message or error.message
            trace.latency_ms = (time.perf_counter() - started) * 1000
            await _send_error(send, error)
        except ClientLeft:
            trace.status_code = 200 if held is not None and held.opened else CLIENT_CLOSED_REQUEST
            trace.outcome = Outcome.CLIENT_DISCONNECTED
            trace.latency_ms = (time.perf_counter() - started) * 1000
        except Exception as exc:
            log.exception("the router failed on %s", path)
            trace.outcome, trace.error_message = Outcome.UPSTREAM_ERROR, f"router error: {exc}"
            trace.latency_ms = (time.perf_counter() - started) * 1000
            # Nothing sent yet, or a held stream still open: the client still gets a proper answer.
            if trace.status_code == 0 or (held is not None and held.opened and not held.closed):
                trace.status_code = trace.status_code or 500
                await _send_error(send, errors.router_failed())
        finally:
            if trace.status_code == 0:
                # Cancelled before any answer (the server stopping, the client gone): nginx's 499 says so.
                trace.status_code, trace.outcome = CLIENT_CLOSED_REQUEST, Outcome.CLIENT_DISCONNECTED
                trace.latency_ms = (time.perf_counter() - started) * 1000
            runtime.usage.record(trace)
            if trace.prompt_tokens is not None and key.tokens_per_minute is not None:
                await runtime.limits.add_tokens(key, trace.prompt_tokens + (trace.completion_tokens or 0))


def new_trace(key: KeyEntry, path: str, call: Call | None = None, *, at: float | None = None) -> TraceRecord:
    """A request's trace: of `call` once admitted; `at`, when the request came (time.time()), if not now."""
    return TraceRecord(api_key_id=key.id, endpoint=ENDPOINTS.get(path) or path.removeprefix("/v1/"),
                       model=call.model if call is not None else "", stream=call is not None and call.stream,
                       status_code=0, outcome=Outcome.OK,
                       created_at=datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC),
                       latency_ms=0.0)


def admit(runtime: RouterRuntime, path: str, body: bytes, key: KeyEntry, session_id: str | None,
          trace: TraceRecord | None) -> Call:
    """The call, once the checks that need no waiting passed (its key's limits are next): raises ApiError.
    `trace` (None when the caller makes it afterwards, from the call) gets the call's model and stream."""
    call = parse_call(path, body, session_id, with_prefix=runtime.balancer.policy == CACHE_AWARE)
    if trace is not None:
        trace.model, trace.stream = call.model, call.stream
    if call.model not in runtime.table.known_models:
        raise errors.model_not_found(call.model)
    _check_task(path, call.model, runtime.table.embedding_models)
    if not key.may_use(call.model):
        raise errors.model_not_allowed(call.model)
    if key.over_budget:
        raise errors.budget_exceeded()
    return call


def error_answer(error: errors.ApiError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """An error's status, headers and body, as the client gets it."""
    body = json.dumps(error.payload()).encode()
    return error.status, [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *error.headers()], body


def _outcome_of(error: errors.ApiError) -> str:
    return OUTCOMES_BY_CODE.get(error.code) or OUTCOMES_BY_STATUS.get(error.status, Outcome.CLIENT_ERROR)


def read_headers(runtime: RouterRuntime, headers) -> tuple[KeyEntry, str | None]:
    """The caller's key (or 401) and the optional X-Session-Id."""
    authorization = session_id = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value
        elif name == b"x-session-id":
            session_id = value.decode("latin-1") or None
    if authorization is None:
        raise errors.missing_api_key()
    if authorization[:len(BEARER)].lower() != BEARER:
        raise errors.invalid_api_key()
    key = runtime.keys.get(runtime.key_hash(authorization))
    if key is None:
        raise errors.invalid_api_key()
    return key, session_id


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.payload_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _models_answer(runtime: RouterRuntime, key: KeyEntry, path: str) -> dict:
    """The models this key may use that are served now, or that a pool wakes up for (a request for one is
    held while the pool scales from zero), as OpenAI lists them."""
    table = runtime.table
    servable = set(table.routable) | {model for model, pool in runtime.pools.items() if pool.holds}
    cards = [
        {"id": model, "object": "model", "created": table.ready_since.get(model, 0), "owned_by": "inventiv"}
        for model in sorted(servable) if key.may_use(model)
    ]
    if path == MODELS_PATH:
        return {"object": "list", "data": cards}
    wanted = path[len(MODELS_PATH) + 1:]
    for card in cards:
        if card["id"] == wanted:
            return card
    raise errors.model_not_found(wanted)


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send, error: errors.ApiError) -> None:
    status, headers, body = error_answer(error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
