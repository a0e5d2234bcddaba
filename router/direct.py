"""The direct lane: the commonest generation request answered from callbacks, with no task, future or timer
of its own.

A non-streamed request whose key has no limits, for a model with a routable instance that has an idle
pooled connection, needs nothing to wait for but the engine's answer. So the express lane
(router/server.py) hands it here once its body is in: the same checks as every request (router/asgi.py
`admit`), the balancer's pick, the request written at once (router/upstream.py `send_now`), and, when the
engine's answer is complete, the same relay as router/proxy.py's (`answered`) written to the client from
the upstream connection's own callback, and the trace recorded. Under bench/router.py the task, its chain
of coroutines, the futures and the two timers a request otherwise takes were about a fifth of the router's
own CPU per request.

A request that fails a check (its error is answered there), or whose key has limits (checked on the
task, with Redis when there is one), goes the usual way, on a task, untouched. Any other request begun here
that cannot finish here is taken on by a task where it stands (RouterApp.continue_call), without its checks
made twice: a stream, a model with no routable instance (held or refused) or none to pick; the instance
picked when no connection to it was idle; a retry on
another instance when the one picked failed it (a 5xx, a refused engine key, a broken answer, the read
timeout); the same pick again on a fresh connection when a pooled one was found closed before any answer
(the engine closed it while idle: it never read the request; `post` does the same).
"""

from __future__ import annotations

import logging
import time

from router import errors
from router.asgi import Outcome, RouterApp, admit, error_answer, new_trace, read_headers
from router.calls import Call
from router.keys import KeyEntry
from router.proxy import (JSON_CONTENT_TYPE, describe, failed, failed_answer, instance_failed, note_answered,
                          relay_headers, relay_lines)
from router.runtime import RouterRuntime
from router.table import Candidate
from router.upstream import Response, UpstreamTimeout
from router.usage import TraceRecord

log = logging.getLogger(__name__)


def serve(app: RouterApp, exchange) -> bool:
    """Begin answering `exchange` (router/server.py's) here; False, with nothing done, to leave it to a task.

    What the engine's answer does not wait for (the trace, the balancer's count) is done once the request
    is written: the engine is at work meanwhile, and its answer is read only after this returns."""
    started, at = time.perf_counter(), time.time()
    runtime = app.runtime_of(exchange.protocol.loop)
    if runtime is None or not runtime.loaded:
        return False
    try:
        key, session_id = read_headers(runtime, exchange.headers)
        if key.is_limited:
            return False
        call = admit(runtime, exchange.path, exchange.body(), key, session_id, None)
    except errors.ApiError:
        return False  # the task's run answers it
    exchange.chunks = []  # the call holds the body now
    candidates = runtime.table.routable.get(call.model)
    picked = None
    if not call.stream and candidates is not None:
        picked = runtime.balancer.pick(candidates, session_id=call.session_id, prefix=call.prefix)
    if picked is None:
        # A stream, a model to hold, or no instance to pick: the task takes the admitted call on.
        exchange.spawn(app.continue_call(runtime, call, new_trace(key, call.path, call, at=at), key, exchange.send,
                                         exchange.receive, started))
        return True
    candidate, reason = picked
    answer = _Answer(app, runtime, exchange, call, key, candidate, reason, started)
    # Its callback comes from the event loop, after this returns (uvloop reports a failed write that way too).
    answer.response = runtime.upstream.send_now(candidate.endpoint, call.path_bytes, call.body, answer)
    answer.trace = trace = new_trace(key, call.path, call, at=at)
    trace.instance_id, trace.route_reason = candidate.instance_id, reason
    if answer.response is None:
        exchange.spawn(app.continue_call(runtime, call, trace, key, exchange.send, exchange.receive, started,
                                         first=picked))
    else:
        runtime.balancer.started(candidate.instance_id)
    return True


class _Answer:
    """What to do once the engine's answer is complete (`error` None) or failed: relay it, or hand over."""

    __slots__ = ("app", "runtime", "exchange", "call", "trace", "key", "candidate", "reason", "response", "started")

    def __init__(self, app: RouterApp, runtime: RouterRuntime, exchange, call: Call, key: KeyEntry,
                 candidate: Candidate, reason: str, started: float) -> None:
        self.app, self.runtime, self.exchange, self.call = app, runtime, exchange, call
        self.key, self.candidate, self.reason, self.started = key, candidate, reason, started
        self.trace: TraceRecord | None = None  # made once the request is written
        self.response: Response | None = None  # set once sent

    def __call__(self, error: BaseException | None) -> None:
        runtime, response, trace = self.runtime, self.response, self.trace
        instance_id = self.candidate.instance_id
        try:
            if error is not None:
                response.close()
                if response.status == 0 and not isinstance(error, UpstreamTimeout):
                    # Closed before any answer: as `post` does, the same instance again, on a fresh connection.
                    self._hand_over(first=(self.candidate, self.reason))
                else:
                    failed(runtime, instance_id, trace, f"reading the answer failed: {describe(error)}")
                    self._hand_over(tried=(instance_id,))
                return
            status, body = response.status, response.body()
            if instance_failed(status):
                failed_answer(runtime, instance_id, trace, status, body)
                self._hand_over(tried=(instance_id,))
                return
            # The client's answer first; what only the trace and the breaker need, after.
            trace.latency_ms = (time.perf_counter() - self.started) * 1000
            content_type = response.content_type or JSON_CONTENT_TYPE
            if not self.exchange.respond_relayed(status, relay_lines(self.candidate, self.reason, content_type,
                                                                     len(body)), body):
                self.exchange.respond(status, relay_headers(self.candidate, self.reason, content_type, len(body)),
                                      body)
            note_answered(runtime, instance_id, trace, status, body)
            runtime.usage.record(trace)
        except Exception as exc:  # noqa: BLE001 - a callback of the upstream connection: nothing above it would answer
            log.exception("the router failed on %s", self.call.path)
            if not self.exchange.response_started:  # as RouterApp answers a fault of its own
                trace.status_code, trace.outcome = 500, Outcome.UPSTREAM_ERROR
                trace.error_message = f"router error: {exc}"
                trace.latency_ms = (time.perf_counter() - self.started) * 1000
                self.exchange.respond(*error_answer(errors.router_failed()))
                runtime.usage.record(trace)
        finally:
            # Before the loop runs a task this may have handed the call to: its pick sees the load as it is.
            runtime.balancer.finished(instance_id)
            response.release()  # back to the pool when read whole (closed ones stay closed)

    def _hand_over(self, **where) -> None:
        exchange = self.exchange
        exchange.spawn(self.app.continue_call(self.runtime, self.call, self.trace, self.key, exchange.send,
                                              exchange.receive, self.started, **where))
