"""Scale-out: the Redis that every router process shares, when one is configured (ROUTER_REDIS_URL, by
default REDIS_URL).

Per-key limits (router/shared_limits.py), held-request counts (router/shared_holds.py) and the change
feed (router/changes.py) use it. Every key lives under ROUTER_REDIS_PREFIX, since the same Redis is
usually Celery's broker too.

Redis is a help, never a dependency: every operation has a short deadline, and while Redis does not
answer (an error, a timeout) the router counts in its own process, as without Redis, says so in one log
line, and asks again only every RETRY_AFTER_OUTAGE_S (so an outage costs the request path nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.asyncio
from django.conf import settings
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# A Redis operation on the request path never waits longer than this.
OPERATION_TIMEOUT_S = 0.25
RETRY_AFTER_OUTAGE_S = 5.0
REDIS_ERRORS = (RedisError, OSError)


def redis_url() -> str:
    return getattr(settings, "ROUTER_REDIS_URL", "") or ""


def redis_prefix() -> str:
    return settings.ROUTER_REDIS_PREFIX


class SharedStore:
    """The router runtime's asynchronous Redis client (one per event loop), with outage bookkeeping."""

    def __init__(self, url: str, prefix: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.prefix = prefix
        self.clock = clock
        self.client = redis.asyncio.Redis.from_url(
            url, socket_timeout=OPERATION_TIMEOUT_S, socket_connect_timeout=OPERATION_TIMEOUT_S,
        )
        self._retry_at = 0.0
        self._outage = False

    def key(self, *parts) -> str:
        return self.prefix + ":".join(str(part) for part in parts)

    @property
    def usable(self) -> bool:
        """False for a while after a failure: callers count in this process meanwhile."""
        return self.clock() >= self._retry_at

    def script(self, source: str):
        return self.client.register_script(source)

    async def run(self, script, keys: list[str], args: list) -> list | None:
        """Run a registered script; None when Redis does not answer (the caller falls back)."""
        if not self.usable:
            return None
        try:
            result = await script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            self.failed(exc)
            return None
        self.answered()
        return result

    def failed(self, exc: BaseException) -> None:
        self._retry_at = self.clock() + RETRY_AFTER_OUTAGE_S
        if not self._outage:
            self._outage = True
            log.warning("Redis does not answer (%s): per-key limits and held-request counts are counted per "
                        "router process, and changes found by polling, until it does", exc or type(exc).__name__)

    def answered(self) -> None:
        if self._outage:
            self._outage = False
            log.info("Redis answers again: limits, held-request counts and changes are shared again")

    async def close(self) -> None:
        await self.client.aclose()


def shared_store() -> SharedStore | None:
    """A store for this event loop's runtime, or None without a configured Redis."""
    url = redis_url()
    return SharedStore(url, redis_prefix()) if url else None
