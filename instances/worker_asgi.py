"""The heartbeat's fast path: `POST /api/worker/heartbeat` served as a raw ASGI app.

Heartbeats are the control plane's hottest write (thousands of machines every few seconds). Going
through Django's request stack (middleware, URL resolution, the WSGI adapter) cost more CPU than the two
SQL statements a heartbeat needs, so inventiv/asgi.py hands this one path here. Every answer, errors
included, comes from the module the Django views answer through (worker_protocol.py); the heartbeat's is
computed on a fixed pool of threads that each keep their database connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connections

from instances.worker_protocol import (
    MAX_BODY_BYTES,
    TOO_LARGE,
    Answer,
    answer_heartbeat,
    method_not_allowed,
    retry_after_headers,
)

HEARTBEAT_PATH = "/api/worker/heartbeat"
# Longest wait for every pool thread to close its database connection.
CLOSE_TIMEOUT_S = 10
JSON_HEADERS = [(b"content-type", b"application/json")]


def _answer_on_thread(body: bytes, authorization: str) -> Answer:
    # The hygiene Django applies around each request: drop a broken or expired connection.
    close_old_connections()
    try:
        return answer_heartbeat(body, authorization)
    finally:
        close_old_connections()


def close_connections_on(executor: ThreadPoolExecutor, threads: int) -> None:
    """Close the database connection of every thread of `executor` (at most `threads` of them): one job per
    thread, each held at a barrier until all have started, so that every thread runs one."""
    barrier = threading.Barrier(threads)

    def close() -> None:
        connections.close_all()
        barrier.wait(timeout=CLOSE_TIMEOUT_S)

    for job in [executor.submit(close) for _ in range(threads)]:
        job.result(timeout=CLOSE_TIMEOUT_S)


class HeartbeatApp:
    def __init__(self, *, threads: int):
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heartbeat")

    def close_connections(self) -> None:
        """Close the database connection each pool thread keeps (a test database can then be dropped)."""
        close_connections_on(self.executor, self.threads)

    async def __call__(self, scope, receive, send) -> None:
        if scope["method"] != "POST":
            await _send(send, method_not_allowed(scope["method"]), [(b"allow", b"POST")])
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await _send(send, TOO_LARGE)
                return
            if not message.get("more_body"):
                break
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        loop = asyncio.get_running_loop()
        await _send(send, await loop.run_in_executor(self.executor, _answer_on_thread, bytes(body), authorization))


async def _send(send, answer: Answer, extra_headers=()) -> None:
    status, payload = answer
    body = json.dumps(payload).encode()
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra_headers,
               *((name.lower().encode(), value.encode()) for name, value in retry_after_headers(status).items())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
