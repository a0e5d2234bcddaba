"""Real loopback servers for the router's tests: the router under uvicorn in a thread (with the express
lane of router/server.py, as production serves it), and an engine that breaks its stream on purpose."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import uvicorn

from worker_agent.simulator.inprocess import LOOPBACK

REPOSITORY = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.01


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    return sock


class UvicornThread:
    """An ASGI app served by uvicorn (lifespan on) in a daemon thread on a free loopback port.

    uvicorn installs signal handlers only in the main thread, so none are installed here; `stop()` asks
    the server to exit as a signal would, and the lifespan shutdown runs.
    """

    def __init__(self, app, *, http="auto", **config) -> None:
        self.app = app
        self._sock = bound_socket()
        self.port = self._sock.getsockname()[1]
        config = {"log_level": "warning", "access_log": False, **config}
        self.server = uvicorn.Server(uvicorn.Config(app, http=http, lifespan="on", **config))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> "UvicornThread":
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(POLL_S)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        self._sock.close()


def runtime_of(server: UvicornThread):
    """The router runtime serving in `server` (one event loop, so one runtime)."""
    (runtime,) = server.app.runtimes()
    return runtime


class BreakingUpstream:
    """An 'engine' that answers every request with an SSE stream and drops the connection after
    `events` events, without `[DONE]`: a machine dying mid-generation, made deterministic."""

    def __init__(self, *, events: int = 2) -> None:
        self.events = events
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def start(self) -> "BreakingUpstream":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, LOOPBACK, 0), self._loop
        ).result(START_TIMEOUT_S)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        self.requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index in range(self.events):
            event = b'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "w%d "}}]}\n\n' % index
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.transport.abort()  # a reset, not a clean end of the chunked body

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(STOP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        self._loop.close()


class SimulatorProcess:
    """The simulator as its own process (`python -m worker_agent.simulator`), so a test can SIGKILL it
    the way a machine dies: connections reset, nothing answered."""

    def __init__(self, *, model: str, api_key: str, ttft_s: float = 0.0) -> None:
        with bound_socket() as sock:
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker_agent.simulator", "--model", model, "--port", str(self.port),
             "--api-key", api_key, "--ttft", str(ttft_s)],
            cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the simulator process did not start")
            time.sleep(POLL_S * 5)

    def _healthy(self) -> bool:
        try:
            return requests.get(f"http://{LOOPBACK}:{self.port}/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
