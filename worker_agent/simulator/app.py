"""The simulator's aiohttp application: vLLM's routes plus /sim/* switches for tests."""

import json
from typing import Any

from aiohttp import web

from . import errors, openai_api
from .config import SIM_VERSION, SimConfig
from .engine import SimEngine
from .openai_api import ENGINE_KEY

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# What POST /sim/config may change at run time, with the type each value must have.
TUNABLES: dict[str, type] = {
    "ttft": float, "prefill_tokens_per_second": float, "tokens_per_second": float, "max_num_seqs": int,
}


async def health(request: web.Request) -> web.Response:
    # vLLM answers 200 with an empty body while the engine lives, 503 once it died.
    return web.Response(status=503 if request.app[ENGINE_KEY].dead else 200)


async def version(request: web.Request) -> web.Response:
    return openai_api.json_response({"version": SIM_VERSION})


async def metrics(request: web.Request) -> web.Response:
    text = request.app[ENGINE_KEY].render_metrics()
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def sim_fail(request: web.Request) -> web.Response:
    request.app[ENGINE_KEY].failed = True
    return openai_api.json_response({"dead": True})


async def sim_recover(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    engine.failed = False
    return openai_api.json_response({"dead": engine.dead})


async def sim_config(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    try:
        changes = json.loads(await request.read() or b"{}")
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        parsed = {key: _parse_tunable(key, value) for key, value in changes.items()}
    except ValueError as exc:
        return errors.bad_request(str(exc))
    config = engine.config
    if "ttft" in parsed:
        config.ttft_s = parsed["ttft"]
    if "prefill_tokens_per_second" in parsed:
        config.prefill_tokens_per_second = parsed["prefill_tokens_per_second"]
    if "tokens_per_second" in parsed:
        config.tokens_per_second = parsed["tokens_per_second"]
    if "max_num_seqs" in parsed:
        config.max_num_seqs = parsed["max_num_seqs"]
        engine.scheduler.resize(config.max_num_seqs)
    return openai_api.json_response({
        "ttft": config.ttft_s, "prefill_tokens_per_second": config.prefill_tokens_per_second,
        "tokens_per_second": config.tokens_per_second, "max_num_seqs": config.max_num_seqs,
    })


def _parse_tunable(key: str, value: Any) -> float | int:
    kind = TUNABLES.get(key)
    if kind is None:
        raise ValueError(f"unknown setting {key!r}; known: {', '.join(TUNABLES)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a non-negative number")
    if kind is int and (int(value) != value or value < 1):
        raise ValueError(f"{key} must be a positive integer")
    return kind(value)


def create_app(config: SimConfig) -> web.Application:
    """The simulator as an aiohttp application, ready for an AppRunner or a test client."""
    app = web.Application()
    app[ENGINE_KEY] = SimEngine(config)
    app.router.add_get("/health", health)
    app.router.add_get("/ping", health)
    app.router.add_post("/ping", health)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", openai_api.list_models)
    app.router.add_post("/v1/chat/completions", openai_api.chat_completions)
    app.router.add_post("/v1/completions", openai_api.completions)
    app.router.add_post("/v1/embeddings", openai_api.embeddings)
    app.router.add_post("/sim/fail", sim_fail)
    app.router.add_post("/sim/recover", sim_recover)
    app.router.add_post("/sim/config", sim_config)
    return app
