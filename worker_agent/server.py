"""The agent's own HTTP surface: /healthz, /readyz, /metrics, /info."""

import math
import time

from aiohttp import web

from . import __version__
from .agent import Agent, Status

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """200 only when the engine is healthy and serves the model, and the agent is not draining."""
    agent = request.app[AGENT_KEY]
    if agent.draining:
        return web.json_response({"ready": False, "reason": "draining"}, status=503)
    assert agent.engine is not None
    readiness = await agent.engine.readiness()
    if not readiness.ready:
        return web.json_response({"ready": False, "reason": readiness.reason}, status=503)
    return web.json_response({"ready": True, "reason": None})


async def metrics(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    current, _ = agent.status()
    age = math.nan if agent.last_heartbeat_at is None else time.monotonic() - agent.last_heartbeat_at
    restarts = agent.supervisor.restarts if agent.supervisor is not None else 0
    lines = [
        "# HELP inventiv_agent_status The status the agent reports (1 for the current one).",
        "# TYPE inventiv_agent_status gauge",
        *(f'inventiv_agent_status{{status="{status}"}} {1 if status is current else 0}' for status in Status),
        "# HELP inventiv_agent_heartbeat_failures_total Heartbeats the control plane did not accept.",
        "# TYPE inventiv_agent_heartbeat_failures_total counter",
        f"inventiv_agent_heartbeat_failures_total {agent.heartbeat_failures}",
        "# HELP inventiv_agent_engine_restarts_total Times the supervisor restarted the engine.",
        "# TYPE inventiv_agent_engine_restarts_total counter",
        f"inventiv_agent_engine_restarts_total {restarts}",
        "# HELP inventiv_agent_last_heartbeat_age_seconds Seconds since the last accepted heartbeat (NaN before).",
        "# TYPE inventiv_agent_last_heartbeat_age_seconds gauge",
        f"inventiv_agent_last_heartbeat_age_seconds {age}",
        "# HELP inventiv_agent_in_flight Requests running or waiting in the engine at the last heartbeat.",
        "# TYPE inventiv_agent_in_flight gauge",
        f"inventiv_agent_in_flight {agent.in_flight()}",
    ]
    return web.Response(text="\n".join(lines) + "\n", headers={"Content-Type": METRICS_CONTENT_TYPE})


async def info(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    assert agent.engine is not None
    config = agent.config
    return web.json_response(
        {
            "agent_version": __version__,
            "engine_version": await agent.engine.version() or agent.engine_version,
            "engine_mode": config.engine_mode,
            "instance_id": config.instance_id,
            "model": config.model,
            "served_model_name": config.served_model_name,
            "gpus": agent.gpu.inventory(),
        }
    )


async def start_server(agent: Agent) -> web.AppRunner:
    app = web.Application()
    app[AGENT_KEY] = agent
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/info", info)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, agent.config.agent_host, agent.config.agent_port).start()
    return runner
