"""Keeping a router runtime's keys, routing table and pool directory current.

Two ways, one loop: a reload from the database every poll interval (the safety net), and a reload at
once when a change is pushed (router/changes.py). Pushes that must stop traffic act before any reload:
a revoked key is dropped and a departing instance is taken out of the table in memory, at once. Many
pushes at once make one reload; a push that arrives during a reload gets the next one (RELOAD_GAP_S after
the last one started at the earliest), which starts after its commit and so sees it.

A reload that started before such a push read the database before its commit: what it brings back
cannot resurrect the key or the instance. Each drop is remembered with its time; a reload filters out
what was dropped after it started, and forgets drops older than its start (the database has them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from router import changes
from router.keys import KeyEntry
from router.pools import PoolEntry
from router.table import RoutingTable
from router.usage import UNREACHABLE, in_one_line

log = logging.getLogger(__name__)

# The least time between the starts of two reloads that pushes asked for back to back; what must stop
# traffic at once (a revoke, a drain) is applied in memory before any reload and does not wait for it.
RELOAD_GAP_S = 0.05

Snapshot = tuple[dict[str, KeyEntry], RoutingTable, dict[str, PoolEntry] | None]


class Target(Protocol):
    """What a refresher keeps current (a router runtime)."""

    keys: dict[str, KeyEntry]
    table: RoutingTable

    async def load(self) -> Snapshot: ...

    def install(self, snapshot: Snapshot) -> None: ...


class Refresher:
    def __init__(self, target: Target, *, poll_s: float, pushed_poll_s: float,
                 pushed: Callable[[], bool] = lambda: False) -> None:
        self.target = target
        self.poll_s = poll_s
        self.pushed_poll_s = pushed_poll_s
        self._pushed = pushed
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future] = []
        self._dropped_keys: dict[str, float] = {}
        self._dropped_instances: dict[str, float] = {}
        self._failures = 0

    @property
    def interval_s(self) -> float:
        """Poll less often while pushes arrive: they carry the changes, the poll only catches strays."""
        return self.pushed_poll_s if self._pushed() else self.poll_s

    def reload_soon(self) -> asyncio.Future:
        """Ask for a reload now; the future is done once a reload that started after this call ended."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        return waiter

    async def apply(self, change: dict) -> None:
        """A pushed change: drop what must stop at once, then reload (waiting for it unless it was a drop:
        the drop is what the announcer waits for)."""
        kind = change.get("kind")
        if kind == changes.KEY_REVOKED and isinstance(change.get("key_hash"), str):
            self._drop_key(change["key_hash"])
        elif kind == changes.INSTANCE_LEFT and isinstance(change.get("instance_id"), str):
            self._drop_instance(change["instance_id"])
        waiter = self.reload_soon()
        if kind not in changes.STOPPING:
            await waiter

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            await self._reload()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._waiters:
                # Asked for during the reload: go again, but not sooner than RELOAD_GAP_S after the last
                # one started, so that a burst of pushes (hundreds of instances becoming ready) costs a
                # few reloads a second, not one after another for as long as it lasts.
                await asyncio.sleep(max(0.0, started + RELOAD_GAP_S - time.monotonic()))
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def _reload(self) -> None:
        started = time.monotonic()
        try:
            keys, table, pools = await self.target.load()
        except Exception as exc:
            # Keep routing on the last good table; say so once per outage, not at every poll: in one line
            # when the database is away, with the traceback when it is anything else.
            if self._failures == 0:
                if isinstance(exc, UNREACHABLE):
                    log.warning("refreshing the routing table failed (%s); keeping the last one", in_one_line(exc))
                else:
                    log.exception("refreshing the routing table failed; keeping the last one")
            self._failures += 1
            return
        if self._failures:
            log.info("routing table refreshed again after %d failures", self._failures)
            self._failures = 0
        keys = _without(keys, self._recent(self._dropped_keys, started))
        late = self._recent(self._dropped_instances, started)
        self.target.install((keys, table.without(late) if late else table, pools))

    def _drop_key(self, key_hash: str) -> None:
        self._dropped_keys[key_hash] = time.monotonic()
        if key_hash in self.target.keys:
            self.target.keys = _without(self.target.keys, {key_hash})

    def _drop_instance(self, instance_id: str) -> None:
        self._dropped_instances[instance_id] = time.monotonic()
        self.target.table = self.target.table.without({instance_id})

    @staticmethod
    def _recent(dropped: dict[str, float], started: float) -> set[str]:
        """What was dropped after `started` (a reload that began then may have missed it); forget the
        rest, which the database had already when the reload read it."""
        for name in [name for name, at in dropped.items() if at < started]:
            del dropped[name]
        return set(dropped)


def _without(keys: dict[str, KeyEntry], hashes: set[str]) -> dict[str, KeyEntry]:
    if not hashes:
        return keys
    return {key_hash: entry for key_hash, entry in keys.items() if key_hash not in hashes}
