"""Per-key limits for every router process at once: the sliding windows of router/limits.py, kept in
Redis by atomic scripts when a Redis is configured (router/shared.py), in this process otherwise or
while Redis does not answer.

A key's requests are a sorted set of arrival times, its tokens a hash of per-second totals, both under
the router's prefix and expiring with the window. The scripts read Redis's own clock, so replicas on
different machines share one time line. A key with no limit never reaches Redis.
"""

from __future__ import annotations

import itertools
import uuid

from router.keys import KeyEntry
from router.limits import TOKEN_BUCKET_S, WINDOW_S, RateLimiter
from router.shared import SharedStore

NO_LIMIT = -1

# KEYS: the key's request stamps (sorted set), its tokens per second (hash).
# ARGV: requests per minute, tokens per minute (NO_LIMIT: none), window (s), a member unique to this request.
# Returns {limit reached ("" when admitted), seconds to wait}; the wait is a string (Lua numbers would be
# cut to integers).
ADMIT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local window = tonumber(ARGV[3])
local horizon = now - window
local tpm = tonumber(ARGV[2])
if tpm >= 0 then
  local flat = redis.call('HGETALL', KEYS[2])
  local buckets, total = {}, 0
  for i = 1, #flat, 2 do
    local second = tonumber(flat[i])
    if second + 1 <= horizon then
      redis.call('HDEL', KEYS[2], flat[i])
    else
      local tokens = tonumber(flat[i + 1])
      total = total + tokens
      table.insert(buckets, {second, tokens})
    end
  end
  if total >= tpm then
    table.sort(buckets, function(a, b) return a[1] < b[1] end)
    local left = total
    for _, bucket in ipairs(buckets) do
      left = left - bucket[2]
      if left < tpm then return {'tokens per minute', tostring(bucket[1] + 1 - horizon)} end
    end
    return {'tokens per minute', tostring(window)}
  end
end
local rpm = tonumber(ARGV[1])
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {'requests per minute', tostring(tonumber(oldest[2]) - horizon)}
  end
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
end
return {'', '0'}
"""

# KEYS: the key's tokens per second (hash). ARGV: tokens, seconds to keep the hash.
ADD_TOKENS = """
local now_parts = redis.call('TIME')
redis.call('HINCRBY', KEYS[1], now_parts[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class Limits:
    """What the request path asks: `await admit(key)` before forwarding, `await add_tokens(...)` after."""

    def __init__(self, store: SharedStore | None, *, local: RateLimiter | None = None) -> None:
        self.store = store
        self.local = local or RateLimiter()
        # Request stamps must be unique members of the sorted set, across processes.
        self._process = uuid.uuid4().hex
        self._sequence = itertools.count()
        if store is not None:
            self._admit = store.script(ADMIT)
            self._add_tokens = store.script(ADD_TOKENS)

    async def admit(self, key: KeyEntry) -> tuple[str, float] | None:
        """Count one request for `key`, or refuse it: (which limit, seconds to wait)."""
        if not key.is_limited:
            return None
        store = self.store
        if store is None or not store.usable:
            return self.local.admit(key)
        result = await store.run(self._admit, keys=[store.key("limits", key.id, "requests"),
                                                     store.key("limits", key.id, "tokens")],
                                 args=[_limit(key.requests_per_minute), _limit(key.tokens_per_minute), WINDOW_S,
                                       f"{self._process}:{next(self._sequence)}"])
        if result is None:
            return self.local.admit(key)
        limit, wait = result
        return (limit.decode(), max(float(wait), 0.0)) if limit else None

    async def add_tokens(self, key: KeyEntry, tokens: int) -> None:
        if key.tokens_per_minute is None or tokens <= 0:
            return
        store = self.store
        if store is not None and store.usable:
            done = await store.run(self._add_tokens, keys=[store.key("limits", key.id, "tokens")],
                                   args=[tokens, int(WINDOW_S + 2 * TOKEN_BUCKET_S)])
            if done is not None:
                return
        self.local.add_tokens(key, tokens)


def _limit(value: int | None) -> int:
    return NO_LIMIT if value is None else value
