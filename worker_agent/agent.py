"""The agent's state and decisions: what it reports to the control plane and how it obeys the answers.

The reporting loop (`reporting.py`) and the HTTP surface (`server.py`) read this object; `runner.py` wires
them together for one run of the process: it opens the HTTP session, attaches the engine client, starts
the engine and stops it.
"""

import asyncio
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from . import __version__
from .config import AgentConfig
from .engine_client import EngineClient, Readiness
from .engine_command import engine_command, engine_environment, engine_version_hint
from .gpu import GpuProbe
from .host import HostProbe, host_inventory
from .metrics import EngineMetrics, EngineMetricsReader, ParseError
from .supervisor import EngineSupervisor

logger = logging.getLogger(__name__)

REPORTED_LOG_LINES = 50  # of the 200 kept, how many an `error` heartbeat carries


class Status(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    ERROR = "error"


class Action(StrEnum):
    SERVE = "serve"
    DRAIN = "drain"
    SHUTDOWN = "shutdown"


class Agent:
    def __init__(self, config: AgentConfig, *, gpu: GpuProbe | None = None) -> None:
        self.config = config
        self.gpu = gpu if gpu is not None else GpuProbe()
        self.host = HostProbe()
        argv = engine_command(config)
        self.supervisor = (
            EngineSupervisor(
                argv,
                env=engine_environment(config),
                secrets=config.secrets,
                restart_backoff_s=config.restart_backoff_s,
                stop_grace_s=config.stop_grace_s,
            )
            if argv is not None
            else None
        )
        self.engine_version = engine_version_hint(config)
        self.readiness = Readiness(False, "engine not probed yet")
        self.engine_metrics = EngineMetrics()
        self.draining = False
        self.heartbeat_interval_s = config.heartbeat_interval_s
        self.heartbeat_failures = 0
        self.last_heartbeat_at: float | None = None  # time.monotonic() of the last accepted heartbeat
        self._metrics_reader = EngineMetricsReader()
        self._stop = asyncio.Event()
        self.engine: EngineClient | None = None  # attached by the runner, which owns the HTTP session

    # -- state -------------------------------------------------------------------------------

    def status(self) -> tuple[Status, str | None]:
        """What the next heartbeat says, with a reason a person can act on."""
        if self.draining:
            return Status.DRAINING, "draining on the control plane's request"
        supervisor = self.supervisor
        if supervisor is not None and supervisor.failing and not self.readiness.ready:
            return Status.ERROR, f"{supervisor.last_exit} ({supervisor.consecutive_failures} times in a row)"
        if self.readiness.ready:
            return Status.READY, None
        if self.readiness.engine_dead:
            return Status.ERROR, self.readiness.reason
        return Status.STARTING, self.readiness.reason

    def in_flight(self) -> int:
        metrics = self.engine_metrics
        return int((metrics.running or 0) + (metrics.waiting or 0))

    async def refresh(self) -> None:
        """Probe the engine and, when it answers, scrape its metrics."""
        assert self.engine is not None
        was_ready = self.readiness.ready
        self.readiness = await self.engine.readiness()
        if not self.readiness.ready:
            self.engine_metrics = EngineMetrics()
            return
        if self.supervisor is not None:
            self.supervisor.mark_healthy()
        if not was_ready:
            # Ask once per (re)start: the engine may have been upgraded while it was down.
            self.engine_version = await self.engine.version() or self.engine_version
        text = await self.engine.metrics_text()
        try:
            self.engine_metrics = self._metrics_reader.read(text) if text is not None else EngineMetrics()
        except ParseError as exc:
            logger.warning("engine /metrics could not be read: %s", exc)
            self.engine_metrics = EngineMetrics()

    def register_payload(self) -> dict[str, Any]:
        config = self.config
        return {
            "instance_id": config.instance_id,
            "agent_version": __version__,
            "engine_version": self.engine_version,
            "model": config.served_model_name,
            "agent_port": config.agent_port,
            "engine_port": config.engine_port,
            "gpus": self.gpu.inventory(),
            "host": host_inventory(),
        }

    def heartbeat_payload(self) -> dict[str, Any]:
        status, reason = self.status()
        payload: dict[str, Any] = {
            "instance_id": self.config.instance_id,
            "status": status.value,
            "reason": reason,
            "model": self.config.served_model_name,
            "sent_at": datetime.now(UTC).isoformat(),
            "in_flight": self.in_flight(),
            "engine": self.engine_metrics.as_dict(),
            "gpus": self.gpu.sample(),
            "host": self.host.sample(),
        }
        if status is Status.ERROR and self.supervisor is not None:
            payload["engine_log_tail"] = self.supervisor.tail()[-REPORTED_LOG_LINES:]
        elif status is Status.ERROR:
            payload["engine_log_tail"] = []
        return payload

    def adopt_interval(self, answer: dict[str, Any]) -> None:
        """The control plane may set the heartbeat interval in any answer; absent or invalid: keep ours."""
        interval = answer.get("heartbeat_interval_s")
        if isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval > 0:
            self.heartbeat_interval_s = float(interval)

    def obey(self, answer: dict[str, Any]) -> None:
        self.adopt_interval(answer)
        action = answer.get("action", Action.SERVE.value)
        if action == Action.DRAIN:
            if not self.draining:
                logger.info("control plane asks to drain: accepting no new work")
            self.draining = True
        elif action == Action.SERVE:
            if self.draining:
                logger.info("control plane cancelled the drain")
            self.draining = False
        elif action == Action.SHUTDOWN:
            logger.info("control plane asks to shut down")
            self.request_stop()
        else:
            logger.warning("ignoring unknown action %r from the control plane", action)

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait_for_stop(self) -> None:
        await self._stop.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when a stop is requested."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass
