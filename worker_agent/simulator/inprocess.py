"""Run an aiohttp application on a free loopback port in a background thread (tests, benchmarks)."""

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from .app import create_app
from .config import SimConfig

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
LOOPBACK = "127.0.0.1"

T = TypeVar("T")


class AppThread:
    """An aiohttp app served by its own event loop in a daemon thread.

    `start()` returns once the socket listens; `stop()` closes the server, the loop and the thread.
    Usable as a context manager.
    """

    def __init__(self, app: web.Application, *, host: str = LOOPBACK, port: int = 0) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aiohttp-app", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "AppThread":
        self._thread.start()
        self.call(self._start())
        return self

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT_S) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start(self) -> None:
        # Binding the socket ourselves gives the real port even when port 0 asked for a free one.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            self.call(self._runner.cleanup(), timeout=STOP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        self._loop.close()

    def __enter__(self) -> "AppThread":
        # start_simulator() hands back a started server; `with` must not start it twice.
        return self if self._thread.ident is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_simulator(config: SimConfig, *, port: int = 0) -> AppThread:
    """A running in-process simulator; `config.load_time_s` is not applied here."""
    return AppThread(create_app(config), host=LOOPBACK, port=port).start()
