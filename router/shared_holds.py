"""Held-request counts for every router process at once (scale from zero, router/hold.py): each pool's
queue bound applies to the requests all replicas hold, and the count reported to the autoscaler is the
pool's total, not one replica's.

In Redis, a pool's hash maps each router process to what it holds now and until when that figure is
good (HELD_TTL_S, renewed by every change and by the hold reports while it holds any): a process that
died stops counting once its figure expires. Each process writes its own figure, the one it knows, so a
lost or late write is corrected by the next.
"""

from __future__ import annotations

import uuid

from router.shared import SharedStore

# A process that holds requests reports every 2 s (router/hold_queues.py); five missed reports and its
# figure no longer counts.
HELD_TTL_S = 10
NO_BOUND = -1

# KEYS: the pool's figures (hash: process -> "held|good until"). ARGV: process, its held count now,
# the pool's queue size (NO_BOUND: just set), seconds the figure stays good.
# Returns {1 when set (0: refused, the queue would be over its size), the pool's total}.
SET_HELD = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local others = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if flat[i] ~= ARGV[1] then
    local bar = string.find(flat[i + 1], '|', 1, true)
    if tonumber(string.sub(flat[i + 1], bar + 1)) < now then
      redis.call('HDEL', KEYS[1], flat[i])
    else
      others = others + tonumber(string.sub(flat[i + 1], 1, bar - 1))
    end
  end
end
local mine = tonumber(ARGV[2])
local bound = tonumber(ARGV[3])
if bound >= 0 and others + mine > bound then
  return {0, others}
end
if mine > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], mine .. '|' .. (now + tonumber(ARGV[4])))
  redis.call('EXPIRE', KEYS[1], 2 * tonumber(ARGV[4]))
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return {1, others + mine}
"""


class SharedHolds:
    def __init__(self, store: SharedStore) -> None:
        self.store = store
        self.process = uuid.uuid4().hex
        self._set = store.script(SET_HELD)

    async def enter(self, pool_id: int, held: int, queue_size: int) -> bool | None:
        """This process now holds `held` requests for the pool, if the pool's total stays within
        `queue_size`: True (recorded) or False (refused, nothing recorded); None when Redis does not answer."""
        result = await self._run(pool_id, held, queue_size)
        return None if result is None else bool(result[0])

    async def total(self, pool_id: int, held: int) -> int | None:
        """Record that this process holds `held` requests for the pool; the pool's total over every live
        process, or None when Redis does not answer."""
        result = await self._run(pool_id, held, NO_BOUND)
        return None if result is None else int(result[1])

    async def _run(self, pool_id: int, held: int, bound: int) -> list | None:
        store = self.store
        if not store.usable:
            return None
        return await store.run(self._set, keys=[store.key("held", pool_id)],
                               args=[self.process, held, bound, HELD_TTL_S])
