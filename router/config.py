"""The router's tunables in one frozen object, with their production defaults.

One module of its own so that every part of the request path (runtime, hold, proxy) can read the
configuration without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from router import balancer, breaker, hold_queues, prefixes, usage

# Without pushed changes (no Redis, or a change made in another process), a revoked key or a new ready
# instance takes effect within this (plus one database read).
REFRESH_INTERVAL_S = 0.5
# While pushed changes arrive (router/changes.py), the reload that catches what no push carried: engine
# queue gauges and worker freshness from heartbeats (which come every 5 s), and any change a push missed.
PUSHED_REFRESH_INTERVAL_S = 5.0
# How long a request (or startup) waits for the first routing table before answering 503.
FIRST_LOAD_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 3.0
# Between two reads of one answer: generous, since a long non-streamed generation sends nothing until it ends.
READ_TIMEOUT_S = 600.0
MAX_BODY_BYTES = 16 * 1024 * 1024
# What a 503 asks the client to wait when a known model has no ready instance.
NO_INSTANCE_RETRY_AFTER_S = 5.0
# Idle upstream connections are closed before the engine's own keep-alive (uvicorn's 5 s, aiohttp's 75 s)
# would, so a pooled connection is rarely found dead.
UPSTREAM_KEEPALIVE_S = 4.0
# A held stream gets a comment line this often, so that clients and proxies see a live connection.
HOLD_KEEPALIVE_S = 10.0


@dataclass(frozen=True)
class RouterConfig:
    refresh_interval_s: float = REFRESH_INTERVAL_S
    pushed_refresh_interval_s: float = PUSHED_REFRESH_INTERVAL_S
    first_load_timeout_s: float = FIRST_LOAD_TIMEOUT_S
    max_attempts: int = MAX_ATTEMPTS
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    max_body_bytes: int = MAX_BODY_BYTES
    no_instance_retry_after_s: float = NO_INSTANCE_RETRY_AFTER_S
    breaker_threshold: int = breaker.FAILURE_THRESHOLD
    breaker_cooldown_s: float = breaker.COOLDOWN_S
    flush_interval_s: float = usage.FLUSH_INTERVAL_S
    flush_batch: int = usage.FLUSH_BATCH
    hold_keepalive_s: float = HOLD_KEEPALIVE_S
    hold_report_interval_s: float = hold_queues.HOLD_REPORT_INTERVAL_S
    # How the balancer picks among ready instances (router/balancer.py): cache-aware, least-loaded or
    # round-robin.
    routing: str = balancer.CACHE_AWARE
    prefix_blocks_per_instance: int = prefixes.BLOCKS_PER_INSTANCE
    prefix_load_factor: float = balancer.PREFIX_LOAD_FACTOR
    prefix_load_slack: float = balancer.PREFIX_LOAD_SLACK


def config_from_settings() -> RouterConfig:
    """The production configuration: the defaults, with what settings (the environment) chose."""
    return RouterConfig(routing=settings.ROUTER_ROUTING)
