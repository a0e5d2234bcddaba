"""Runs the engine as a child process, keeps its last output lines, restarts it when it exits."""

import asyncio
import logging
import os
import signal
import time
from collections import deque

from .backoff import Backoff
from .redact import redact

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 200
RESTART_CAP_S = 60.0
FAILURES_BEFORE_ERROR = 3  # consecutive exits before the agent reports `error`
STABLE_RUN_S = 60.0  # an engine that ran this long before exiting starts a fresh failure count
MAX_LINE_BYTES = 64 * 1024  # asyncio's default limit is 64 KiB; longer lines are truncated


class EngineSupervisor:
    """One engine process at a time, in its own process group so that its workers stop with it."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        secrets: list[str] | None = None,
        restart_backoff_s: float = 1.0,
        stop_grace_s: float = 30.0,
    ) -> None:
        self.argv = argv
        self.env = env
        self.secrets = secrets or []
        self.stop_grace_s = stop_grace_s
        self.lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.restarts = 0
        self.consecutive_failures = 0
        self.last_exit: str | None = None
        self._backoff = Backoff(restart_backoff_s, RESTART_CAP_S)
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= FAILURES_BEFORE_ERROR

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def tail(self) -> list[str]:
        return list(self.lines)

    def mark_healthy(self) -> None:
        """The engine answered as ready: earlier exits no longer count towards `error`."""
        self.consecutive_failures = 0
        self._backoff.reset()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="engine-supervisor")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    limit=MAX_LINE_BYTES,
                )
            except OSError as exc:
                self._record_exit(f"engine could not start: {exc}", ran_s=0.0)
            else:
                logger.info("engine started (pid %d)", self._process.pid)
                assert self._process.stdout is not None
                await self._pump(self._process.stdout)
                code = await self._process.wait()
                if self._stopping.is_set():
                    return
                self._record_exit(f"engine exited with code {code}", ran_s=time.monotonic() - started)
            delay = self._backoff.next_delay()
            logger.warning("%s; restarting in %.1f s", self.last_exit, delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except TimeoutError:
                self.restarts += 1

    def _record_exit(self, reason: str, *, ran_s: float) -> None:
        if ran_s >= STABLE_RUN_S:
            self.mark_healthy()
        self.consecutive_failures += 1
        self.last_exit = reason
        self.lines.append(f"[agent] {reason}")

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                # A line longer than the limit: keep what fits and resynchronise on the next newline.
                raw = await stream.read(MAX_LINE_BYTES)
            if not raw:
                return
            self.lines.append(redact(raw.decode(errors="replace").rstrip("\n"), self.secrets))

    async def stop(self) -> int | None:
        """SIGTERM the engine's process group, SIGKILL it after the grace period; returns its exit code."""
        self._stopping.set()
        process = self._process
        code = None
        if process is not None and process.returncode is None:
            logger.info("stopping engine (pid %d), grace %.0f s", process.pid, self.stop_grace_s)
            _signal_group(process.pid, signal.SIGTERM)
            try:
                code = await asyncio.wait_for(process.wait(), timeout=self.stop_grace_s)
            except TimeoutError:
                logger.warning("engine ignored SIGTERM for %.0f s: killing it", self.stop_grace_s)
                _signal_group(process.pid, signal.SIGKILL)
                code = await process.wait()
        elif process is not None:
            code = process.returncode
        if self._task is not None:
            await self._task
        return code


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the engine leads its own session, so its group id is its pid
    except ProcessLookupError:
        pass
