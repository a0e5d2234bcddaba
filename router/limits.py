"""Per-key limits: requests per minute and tokens per minute, over a sliding window, counted in this
router process.

With a Redis configured, router/shared_limits.py keeps the same windows in Redis for every router
process at once, and falls back to this one while Redis does not answer (then, with N router
processes, a key may get up to N times its limit).

A request is admitted while the key made fewer than `requests_per_minute` requests and used fewer than
`tokens_per_minute` tokens (prompt + completion, counted when each answer ends) in the last 60 s. Refusals
are 429 with `Retry-After`: the seconds until the window has room again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from router.keys import KeyEntry

WINDOW_S = 60.0
# Tokens are counted in one-second buckets, so a key's history is at most 60 entries.
TOKEN_BUCKET_S = 1.0


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._requests: dict[int, deque[float]] = {}
        self._tokens: dict[int, deque[list[float]]] = {}
        self._token_sums: dict[int, float] = {}

    def admit(self, key: KeyEntry) -> tuple[str, float] | None:
        """Count one request for `key`, or refuse it: (which limit, seconds to wait)."""
        if not key.is_limited:
            return None
        now = self.clock()
        horizon = now - WINDOW_S
        if key.tokens_per_minute is not None:
            wait = self._token_wait(key.id, key.tokens_per_minute, horizon)
            if wait is not None:
                return "tokens per minute", wait
        if key.requests_per_minute is not None:
            stamps = self._requests.setdefault(key.id, deque())
            while stamps and stamps[0] <= horizon:
                stamps.popleft()
            if len(stamps) >= key.requests_per_minute:
                return "requests per minute", stamps[0] - horizon
            stamps.append(now)
        return None

    def add_tokens(self, key: KeyEntry, tokens: int) -> None:
        if key.tokens_per_minute is None or tokens <= 0:
            return
        bucket = self.clock() // TOKEN_BUCKET_S * TOKEN_BUCKET_S
        buckets = self._tokens.setdefault(key.id, deque())
        if buckets and buckets[-1][0] == bucket:
            buckets[-1][1] += tokens
        else:
            buckets.append([bucket, tokens])
        self._token_sums[key.id] = self._token_sums.get(key.id, 0) + tokens

    def _token_wait(self, key_id: int, limit: int, horizon: float) -> float | None:
        buckets = self._tokens.get(key_id)
        if not buckets:
            return None
        total = self._token_sums[key_id]
        # A bucket leaves the window once its whole second is older than 60 s.
        while buckets and buckets[0][0] + TOKEN_BUCKET_S <= horizon:
            total -= buckets.popleft()[1]
        self._token_sums[key_id] = total
        if total < limit:
            return None
        # Wait until enough of the oldest buckets have left for the total to drop under the limit.
        left = total
        for start, tokens in buckets:
            left -= tokens
            if left < limit:
                return start + TOKEN_BUCKET_S - horizon
        return WINDOW_S
