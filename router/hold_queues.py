"""The bookkeeping of held requests in one router runtime: how many each pool holds (bounded by its queue
size), the wake-up of each model's held requests, and the reports to the pool's owner.

Wake-ups are one asyncio.Event per model with held requests, set by the routing table refresh once the
model has a routable instance (or its pool left the directory): a held request sleeps until then, its
timeout, or its client leaving, and costs nothing in between. A model nobody waits for has no event, and
a refresh with nothing held does one truth test.

Reports (settings.ROUTER_POOL_WAKE): one at once when a pool's first request is held, then the count
every `report_interval_s` while it holds any, then one when its queue empties. One task per holding pool
makes them, one after another, so a slow hook delays reports but never piles them up, and the request
path never waits for one.

With a shared Redis (router/shared_holds.py) the queue bound applies to what every router process holds
for the pool, and the reports carry that total; while Redis does not answer, this process's own count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from router.pools import PoolEntry, report_held
from router.shared_holds import SharedHolds
from router.table import RoutingTable

log = logging.getLogger(__name__)

HOLD_REPORT_INTERVAL_S = 2.0
# At shutdown, how long the last reports (a queue emptied just before) may take before they are dropped.
REPORT_STOP_TIMEOUT_S = 5.0


@dataclass(slots=True)
class _PoolHolds:
    pool_id: int
    held: int = 0
    # Set when `held` leaves 0 or comes back to it: the reporter says so at once.
    edge: asyncio.Event = field(default_factory=asyncio.Event)
    reporter: asyncio.Task | None = None
    # Writes this process's count to the shared store, one at a time, until it is there.
    syncer: asyncio.Task | None = None
    unsynced: bool = False


class HoldQueues:
    def __init__(self, *, run_hook: Callable[..., Awaitable], report_interval_s: float = HOLD_REPORT_INTERVAL_S,
                 shared: SharedHolds | None = None):
        self._run_hook = run_hook
        self.report_interval_s = report_interval_s
        self.shared = shared
        self._pools: dict[int, _PoolHolds] = {}
        self._held_by_model: dict[str, int] = {}
        self._wakers: dict[str, asyncio.Event] = {}
        self._report_failures = 0

    def held(self, pool_id: int) -> int:
        holds = self._pools.get(pool_id)
        return holds.held if holds is not None else 0

    async def enter(self, model: str, pool: PoolEntry) -> bool:
        """Take a place in the pool's queue for a request for `model`; False when the queue is full."""
        holds = self._pools.get(pool.pool_id)
        if holds is None:
            holds = self._pools[pool.pool_id] = _PoolHolds(pool.pool_id)
        if holds.held >= pool.queue_size:
            return False
        # Counted before asking the shared store, so that concurrent entries each ask with their own total.
        self._count(model, holds, +1)
        if self.shared is not None:
            try:
                admitted = await self.shared.enter(pool.pool_id, holds.held, pool.queue_size)
            except BaseException:  # cancelled while asking: the place was never taken
                admitted = False
                raise
            finally:
                if admitted is False:
                    self._count(model, holds, -1)
            if admitted is False:
                self._sync(holds)
                return False
            self._sync(holds)  # another entry or leave may have written an older figure meanwhile
        return True

    def leave(self, model: str, pool_id: int) -> None:
        """Give the place back (the request was answered, timed out, or its client left)."""
        holds = self._pools[pool_id]
        self._count(model, holds, -1)
        if self.shared is not None:
            self._sync(holds)

    def _count(self, model: str, holds: _PoolHolds, change: int) -> None:
        holds.held += change
        if holds.held == 0 or (holds.held == 1 and change > 0):
            holds.edge.set()  # the queue emptied or started: the reporter says so at once
            if holds.held and holds.reporter is None:
                holds.reporter = asyncio.create_task(self._report_while_held(holds),
                                                     name=f"router-hold-{holds.pool_id}")
        left = self._held_by_model.get(model, 0) + change
        if left:
            self._held_by_model[model] = left
        else:
            del self._held_by_model[model]
            self._wakers.pop(model, None)

    def _sync(self, holds: _PoolHolds) -> None:
        """Write this process's count for the pool to the shared store soon, once per change burst."""
        holds.unsynced = True
        if holds.syncer is None:
            holds.syncer = asyncio.create_task(self._write_count(holds), name=f"router-hold-sync-{holds.pool_id}")

    async def _write_count(self, holds: _PoolHolds) -> None:
        try:
            while holds.unsynced:
                holds.unsynced = False
                await self.shared.total(holds.pool_id, holds.held)
        finally:
            holds.syncer = None

    def waker(self, model: str) -> asyncio.Event:
        """The event the next refresh sets if `model` became routable (take it and wait in one step)."""
        event = self._wakers.get(model)
        if event is None:
            event = self._wakers[model] = asyncio.Event()
        return event

    def on_refresh(self, table: RoutingTable, pools: Mapping[str, PoolEntry]) -> None:
        """Wake the requests held for a model that is routable now, or whose pool is gone (they get a 503)."""
        if not self._wakers:
            return
        routable = table.routable
        for model in [m for m in self._wakers if m in routable or m not in pools]:
            self._wakers.pop(model).set()

    async def stop(self) -> None:
        """Let the last reports of emptied queues go out; drop those of pools still holding (shutting down)."""
        syncers = [holds.syncer for holds in self._pools.values() if holds.syncer is not None]
        if syncers:
            await asyncio.wait(syncers, timeout=REPORT_STOP_TIMEOUT_S)
        reporters = [holds.reporter for holds in self._pools.values() if holds.reporter is not None]
        for holds in self._pools.values():
            if holds.held and holds.reporter is not None:
                holds.reporter.cancel()
        if reporters:
            _, late = await asyncio.wait(reporters, timeout=REPORT_STOP_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*reporters, return_exceptions=True)

    async def _report_while_held(self, holds: _PoolHolds) -> None:
        try:
            while True:
                held = holds.held
                await self._report(holds.pool_id, held)
                if held == 0 and holds.held == 0:
                    return
                if (held == 0) != (holds.held == 0):
                    continue  # the queue emptied or filled again during the call: say it now
                holds.edge.clear()
                try:
                    await asyncio.wait_for(holds.edge.wait(), self.report_interval_s)
                except TimeoutError:
                    pass
        finally:
            holds.reporter = None
            if holds.held == 0 and self._pools.get(holds.pool_id) is holds:
                del self._pools[holds.pool_id]

    async def _report(self, pool_id: int, held: int) -> None:
        if self.shared is not None:
            # What every process holds (renewing this one's figure); this one's alone without Redis.
            total = await self.shared.total(pool_id, held)
            held = held if total is None else total
        try:
            await self._run_hook(report_held, pool_id, held)
        except Exception:
            # Every two seconds while it fails: say it once per outage.
            if self._report_failures == 0:
                log.exception("reporting %d held requests for pool %s failed", held, pool_id)
            self._report_failures += 1
        else:
            if self._report_failures:
                log.info("held-request reports work again after %d failures", self._report_failures)
            self._report_failures = 0
