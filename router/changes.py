"""Push, not only poll: what changes the router's view (keys, ready instances, pools) reaches every router
replica at once, and polling stays as the safety net (router/refresher.py).

`announce()` runs where the change was committed (a web thread, a Celery worker, the heartbeat path):
router/signals.py calls it after the commit of an API key change, of an instance entering or leaving
`ready`, and of a pool change. The change goes

- with a Redis (router/shared.py): to the channel every router runtime of every process subscribes to
  (`ChangeFeed`); PUBLISH answers how many runtimes received it;
- without one (or while it does not answer): to the runtimes of this process only (the embedded set-up
  runs one web process, which serves both the API and the router); other processes poll.

`announce` returns once every runtime that received the change has applied it (ACK_TIMEOUT_S at most),
so that when a drain or a revoke call returns no replica routes to that instance or admits that key any
more, and when a key is created or an instance becomes ready every replica knows it. Changes that stop
traffic (a key revoked, an instance leaving `ready`) are applied at once, in memory, before the reload
from the database; the others by that reload.

`announce` never raises: a change it cannot push is found by the next poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio
from django.db import transaction

from router.shared import OPERATION_TIMEOUT_S, REDIS_ERRORS, RETRY_AFTER_OUTAGE_S, SharedStore, redis_prefix, redis_url

log = logging.getLogger(__name__)

CHANNEL = "changes"
# How long `announce(wait=True)` waits for the runtimes' acknowledgements.
ACK_TIMEOUT_S = 0.5
ACK_KEEP_S = 10
# The feed's connection waits for messages without a read timeout; a ping this often finds a dead one.
FEED_HEALTH_CHECK_S = 5
FEED_RETRY_S = 1.0

# Kinds of change.
KEYS = "keys"  # keys were created or changed: reload
KEY_REVOKED = "key-revoked"  # {"key_hash"}: refuse it now, then reload
INSTANCE_LEFT = "instance-left"  # {"instance_id"}: route nothing more to it now, then reload
INSTANCES = "instances"  # an instance became ready: reload
POOLS = "pools"  # the pool directory changed: reload
STOPPING = (KEY_REVOKED, INSTANCE_LEFT)

Apply = Callable[[dict], Awaitable[None]]

# The runtimes of this process: token -> (their event loop, how they apply a change).
_local: dict[str, tuple[asyncio.AbstractEventLoop, Apply]] = {}
_local_lock = threading.Lock()


def register_local(loop: asyncio.AbstractEventLoop, apply: Apply) -> str:
    token = uuid.uuid4().hex
    with _local_lock:
        _local[token] = (loop, apply)
    return token


def unregister_local(token: str) -> None:
    with _local_lock:
        _local.pop(token, None)


def announce_on_commit(kind: str, **fields) -> None:
    """`announce` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: announce(kind, **fields))


def announce(kind: str, *, wait: bool = True, **fields) -> None:
    """Tell every router runtime about a committed change. `wait`: return once each has applied it,
    ACK_TIMEOUT_S at most (never on an event loop's thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        wait = False  # never block an event loop (a runtime may be the one to answer)
    change = {"kind": kind, **fields}
    if _publisher.publish(change, wait=wait):
        return
    _deliver_locally(change, wait=wait)


def _deliver_locally(change: dict, *, wait: bool) -> None:
    with _local_lock:
        targets = list(_local.values())
    futures = []
    for loop, apply in targets:
        try:
            futures.append(asyncio.run_coroutine_threadsafe(apply(change), loop))
        except RuntimeError:  # that loop is closed: its runtime is going away
            continue
    if not wait:
        return
    deadline = time.monotonic() + ACK_TIMEOUT_S
    for future in futures:
        try:
            future.result(max(deadline - time.monotonic(), 0))
        except Exception:  # a timeout, or the runtime stopping: the next poll catches up
            log.warning("a router runtime did not apply %s within %.1f s", change["kind"], ACK_TIMEOUT_S)


class _Publisher:
    """This process's synchronous Redis client for announcements (thread-safe; made on first use)."""

    def __init__(self) -> None:
        self._clients: dict[str, redis.Redis] = {}
        self._retry_at = 0.0
        self._outage = False
        self._lock = threading.Lock()

    def publish(self, change: dict, *, wait: bool) -> bool:
        """True once the change went through Redis (and, with `wait`, was applied); False without Redis
        or while it does not answer (the caller delivers in this process instead)."""
        url = redis_url()
        if not url or time.monotonic() < self._retry_at:
            return False
        client = self._client(url)
        prefix = redis_prefix()
        ack_key = f"{prefix}ack:{uuid.uuid4().hex}" if wait else None
        try:
            receivers = client.publish(prefix + CHANNEL, json.dumps({**change, "ack": ack_key}))
            if ack_key is not None and receivers:
                self._wait_for_acks(client, ack_key, receivers, change["kind"])
        except REDIS_ERRORS as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER_OUTAGE_S
            if not self._outage:
                self._outage = True
                log.warning("Redis does not answer (%s): changes reach this process's router only; other "
                            "replicas poll", exc or type(exc).__name__)
            return False
        if self._outage:
            self._outage = False
            log.info("Redis answers again: changes reach every router replica at once")
        return True

    def _client(self, url: str) -> redis.Redis:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = redis.Redis.from_url(
                    url, socket_timeout=OPERATION_TIMEOUT_S + ACK_TIMEOUT_S, socket_connect_timeout=OPERATION_TIMEOUT_S,
                )
            return client

    @staticmethod
    def _wait_for_acks(client: redis.Redis, ack_key: str, receivers: int, kind: str) -> None:
        deadline = time.monotonic() + ACK_TIMEOUT_S
        acked = 0
        while acked < receivers:
            left = deadline - time.monotonic()
            if left <= 0 or client.blpop([ack_key], timeout=left) is None:
                log.warning("%d of %d router runtimes applied %s within %.1f s; the others catch up by polling",
                            acked, receivers, kind, ACK_TIMEOUT_S)
                break
            acked += 1
        client.delete(ack_key)


_publisher = _Publisher()


class ChangeFeed:
    """A runtime's subscription to the change channel: each change is applied, then acknowledged when
    asked. `connected` says whether pushes arrive (the runtime polls faster while they do not)."""

    def __init__(self, store: SharedStore, apply: Apply, *, on_connect: Callable[[], None]) -> None:
        self.store = store
        self.apply = apply
        self.on_connect = on_connect
        self.connected = False
        self._client = redis.asyncio.Redis.from_url(
            store.url, socket_connect_timeout=OPERATION_TIMEOUT_S, socket_keepalive=True,
            health_check_interval=FEED_HEALTH_CHECK_S,
        )

    async def run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self.store.failed(exc)  # one log line per outage, whoever notices it first
            self.connected = False
            await asyncio.sleep(FEED_RETRY_S)

    async def _listen(self) -> None:
        async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.store.prefix + CHANNEL)
            self.connected = True
            self.store.answered()
            self.on_connect()  # changes made while it was down: one reload finds them
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    change = json.loads(message["data"])
                except ValueError:
                    continue
                try:
                    await self.apply(change)
                except Exception:  # applying never stops the feed; the next reload catches up
                    log.exception("applying the router change %r failed", change.get("kind"))
                ack = change.get("ack")
                if ack:
                    await self.store.client.rpush(ack, 1)
                    await self.store.client.expire(ack, ACK_KEEP_S)

    async def close(self) -> None:
        await self._client.aclose()
