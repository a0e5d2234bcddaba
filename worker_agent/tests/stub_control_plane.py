"""A control plane that speaks PROTOCOL.md and records what the agent sends (test helper)."""

import time
from typing import Any

from aiohttp import web

from worker_agent.simulator.inprocess import AppThread


class StubControlPlane:
    """Answers register/heartbeat; tests flip `action`, `fail_status` (with `retry_after`) or call `forget()`."""

    def __init__(self, *, token: str, heartbeat_interval_s: float) -> None:
        self.token = token
        self.heartbeat_interval_s = heartbeat_interval_s
        self.registrations: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.rejected = 0  # calls answered with fail_status or 401
        self.action = "serve"
        self.fail_status: int | None = None
        self.retry_after: str | None = None  # the Retry-After header sent with fail_status
        self.rejected_at: list[float] = []  # time.monotonic() of each refused call
        self._registered: set[str] = set()
        # The join of a host the operator runs: `join_token` is spent for (`joined_instance`, `token`).
        self.join_token: str | None = None
        self.joined_instance = "inst-joined-1"
        self.joins: list[dict[str, Any]] = []
        self.join_spent = False
        self.join_failures: list[int] = []  # statuses to answer the next joins with, first first
        self.app = web.Application()
        self.app.router.add_post("/api/worker/register", self._register)
        self.app.router.add_post("/api/worker/heartbeat", self._heartbeat)
        self.app.router.add_post("/api/worker/join", self._join)

    def forget(self) -> None:
        """Lose every registration, as a control plane restored from an old backup would."""
        self._registered.clear()

    def statuses(self) -> list[str]:
        return [beat["status"] for beat in list(self.heartbeats)]

    def _refusal(self, request: web.Request) -> web.Response | None:
        if self.fail_status is not None:
            self.rejected += 1
            self.rejected_at.append(time.monotonic())
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.json_response({"error": "unavailable"}, status=self.fail_status, headers=headers)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.rejected += 1
            return web.json_response({"error": "unauthorized"}, status=401)
        return None

    async def _register(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        self.registrations.append(body)
        self._registered.add(body["instance_id"])
        return web.json_response({"heartbeat_interval_s": self.heartbeat_interval_s})

    async def _heartbeat(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        if body["instance_id"] not in self._registered:
            return web.json_response({"error": "not registered"}, status=409)
        self.heartbeats.append(body)
        return web.json_response({"action": self.action, "heartbeat_interval_s": self.heartbeat_interval_s})

    async def _join(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.joins.append(body)
        if self.join_failures:
            status = self.join_failures.pop(0)
            return web.json_response({"error": f"refused with {status}"}, status=status,
                                     headers={"Retry-After": "0"} if status == 503 else None)
        if self.join_token is None or body.get("join_token") != self.join_token:
            return web.json_response({"error": "invalid join token"}, status=401)
        if self.join_spent:
            return web.json_response({"error": "join token already used"}, status=403)
        self.join_spent = True
        return web.json_response({"instance_id": self.joined_instance, "worker_token": self.token,
                                  "heartbeat_interval_s": self.heartbeat_interval_s})

    def serve(self, port: int = 0) -> AppThread:
        return AppThread(self.app, port=port).start()
