"""Exponential backoff, optionally with jitter so that a fleet does not retry in lockstep."""

import random


class Backoff:
    """Delays of base, 2*base, 4*base, ... capped; `reset()` after a success."""

    def __init__(self, base_s: float, cap_s: float, *, jitter: bool = False, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt

    def next_delay(self) -> float:
        delay = min(self.base_s * 2**self._attempt, self.cap_s)
        self._attempt += 1
        if self.jitter:
            # "Equal jitter": at least half the delay, so retries still slow down as they should.
            delay = delay / 2 + self._rng.uniform(0, delay / 2)
        return delay

    def reset(self) -> None:
        self._attempt = 0
