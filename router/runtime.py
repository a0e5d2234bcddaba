"""The router's state in one process (one per event loop): the cached keys, routing table and pool
directory (kept current by router/refresher.py, pushed to by router/changes.py), the upstream
connections (router/upstream.py), the balancer and breakers, limits, usage, and the requests held while
a pool scales from zero.

Nothing here touches the database from the event loop: reads and writes run on one dedicated thread
(so a router process holds one database connection), and the request path only reads in-memory data.
The pool wake hook runs on a thread of its own (a second connection, only once a request was held): it
may enqueue work on the broker, and a slow broker must not hold up the routing table's refresh.

With a Redis (ROUTER_REDIS_URL, by default REDIS_URL) the limits and held-request counts are shared by
every router process and changes arrive by push (router/shared.py); without one, this process counts
alone and hears only the changes made in this process, and polls for the rest.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connections

from router import changes
from router.balancer import Balancer
from router.breaker import CircuitBreakers
from router.changes import ChangeFeed
from router.config import UPSTREAM_KEEPALIVE_S, RouterConfig
from router.hold_queues import HoldQueues
from router.keys import KeyEntry, KeyHashes, load_key_index
from router.pools import PoolEntry, load_pool_directory
from router.prefixes import PrefixIndex
from router.refresher import Refresher, Snapshot
from router.shared import SharedStore, shared_store
from router.shared_holds import SharedHolds
from router.shared_limits import Limits
from router.table import EMPTY_TABLE, RoutingTable, load_routing_table
from router.upstream import UpstreamPool
from router.usage import UsageRecorder

log = logging.getLogger(__name__)


def load_snapshot() -> Snapshot:
    return load_key_index(), load_routing_table(), load_pool_directory()


def _on_db_thread(function, *args):
    # The same hygiene Django applies around a request: drop a connection that broke or outlived
    # CONN_MAX_AGE, before and after.
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


class RouterRuntime:
    def __init__(self, config: RouterConfig, *, store: SharedStore | None = None) -> None:
        self.config = config
        self.keys: dict[str, KeyEntry] = {}
        # The hash of a request's `Authorization` value, to look its key up in `keys`.
        self.key_hash = KeyHashes().of
        self.table: RoutingTable = EMPTY_TABLE
        # Model code -> the pool that may grow to serve it (settings.ROUTER_POOL_DIRECTORY).
        self.pools: dict[str, PoolEntry] = {}
        self.loaded = False
        self.store = store
        self.breakers = CircuitBreakers(threshold=config.breaker_threshold, cooldown_s=config.breaker_cooldown_s)
        self.balancer = Balancer(
            self.breakers, policy=config.routing, load_factor=config.prefix_load_factor,
            load_slack=config.prefix_load_slack,
            prefixes=PrefixIndex(blocks_per_instance=config.prefix_blocks_per_instance),
        )
        self.limits = Limits(store)
        self.usage = UsageRecorder(run_sync=self.run_sync, flush_interval_s=config.flush_interval_s,
                                   batch_size=config.flush_batch)
        self.upstream: UpstreamPool | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-db")
        self._hook_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-hooks")
        self._hooks_used = False
        self.holds = HoldQueues(run_hook=self.run_hook, report_interval_s=config.hold_report_interval_s,
                                shared=SharedHolds(store) if store is not None else None)
        self.feed = ChangeFeed(store, self.apply_change, on_connect=self._reload_after_gap) if store else None
        self.refresher = Refresher(self, poll_s=config.refresh_interval_s,
                                   pushed_poll_s=config.pushed_refresh_interval_s,
                                   pushed=lambda: self.feed is not None and self.feed.connected)
        self._loaded_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._flusher: asyncio.Task | None = None
        self._local_token: str | None = None

    @classmethod
    def from_settings(cls, config: RouterConfig) -> RouterRuntime:
        """A runtime sharing what it must through the configured Redis, if any."""
        return cls(config, store=shared_store())

    def start(self) -> None:
        """Open the upstream connection pool and start the background tasks (call from the event loop)."""
        config = self.config
        self.upstream = UpstreamPool(connect_timeout_s=config.connect_timeout_s, read_timeout_s=config.read_timeout_s,
                                     keepalive_s=UPSTREAM_KEEPALIVE_S)
        self._tasks.append(asyncio.create_task(self.refresher.run(), name="router-refresh"))
        if self.feed is not None:
            self._tasks.append(asyncio.create_task(self.feed.run(), name="router-changes"))
        self._flusher = asyncio.create_task(self.usage.run(), name="router-usage")
        # Changes made in this process reach this runtime directly when there is no Redis to carry them.
        self._local_token = changes.register_local(asyncio.get_running_loop(), self.apply_change)

    async def stop(self) -> None:
        """Stop the tasks, write every pending trace, close the session and the database connection."""
        changes.unregister_local(self._local_token)
        for task in self._tasks:
            task.cancel()
        self.usage.close()
        await asyncio.gather(*self._tasks, self._flusher, return_exceptions=True)
        await self.holds.stop()
        await self.usage.flush()
        if self.upstream is not None:
            await self.upstream.close()
        if self.feed is not None:
            await self.feed.close()
        if self.store is not None:
            await self.store.close()
        await self.run_sync(connections.close_all)
        if self._hooks_used:
            await self.run_hook(connections.close_all)
        self._executor.shutdown(wait=True)
        self._hook_executor.shutdown(wait=True)

    async def run_sync(self, function, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(_on_db_thread, function, *args))

    async def run_hook(self, function, *args):
        """Run a hook of another app (which may use the database) on the hook thread."""
        self._hooks_used = True
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hook_executor, functools.partial(_on_db_thread, function, *args))

    async def load(self) -> Snapshot:
        return await self.run_sync(load_snapshot)

    def install(self, snapshot: Snapshot) -> None:
        keys, table, pools = snapshot
        if table.candidates != self.table.candidates:
            self.balancer.retain({c.instance_id for cands in table.candidates.values() for c in cands})
        self.keys, self.table = keys, table
        if pools is not None:  # None: the directory failed this time; keep the last one
            self.pools = pools
        self.holds.on_refresh(table, self.pools)
        self.loaded = True
        self._loaded_event.set()

    async def refresh(self) -> None:
        """Reload now and wait for it (tests, and changes that must be visible before an answer)."""
        await self.refresher.reload_soon()

    async def apply_change(self, change: dict) -> None:
        await self.refresher.apply(change)

    def _reload_after_gap(self) -> None:
        self.refresher.reload_soon()

    async def wait_loaded(self) -> bool:
        try:
            await asyncio.wait_for(self._loaded_event.wait(), self.config.first_load_timeout_s)
        except TimeoutError:
            return False
        return True
