"""A circuit breaker per instance, in this router process.

Closed: requests flow. After `threshold` consecutive failures (connection refused or reset, timeout, 5xx
before the first byte) it opens: the instance gets no requests for `cooldown_s`. Then it is half-open: one
request at a time is let through as a probe; success closes the breaker, failure opens it again.
A heartbeat can lag a dead engine by several seconds; the breaker reacts within `threshold` requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

FAILURE_THRESHOLD = 3
COOLDOWN_S = 5.0

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float | None = None
    probing: bool = False


class CircuitBreakers:
    def __init__(self, *, threshold: int = FAILURE_THRESHOLD, cooldown_s: float = COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        # Only instances with recent failures have an entry: the common case is one dict miss.
        self._states: dict[str, _State] = {}

    def available(self, instance_id: str) -> bool:
        state = self._states.get(instance_id)
        if state is None or state.open_until is None:
            return True
        if self.clock() < state.open_until:
            return False
        return not state.probing

    def on_selected(self, instance_id: str) -> None:
        """A request goes to the instance: in half-open, it is the one probe."""
        state = self._states.get(instance_id)
        if state is not None and state.open_until is not None:
            state.probing = True

    def record_success(self, instance_id: str) -> None:
        if instance_id in self._states:
            del self._states[instance_id]

    def record_failure(self, instance_id: str) -> None:
        state = self._states.setdefault(instance_id, _State())
        state.failures += 1
        state.probing = False
        if state.failures >= self.threshold:
            state.open_until = self.clock() + self.cooldown_s

    def release_probe(self, instance_id: str) -> None:
        """A probe ended without a verdict (the client went away): let another request probe."""
        state = self._states.get(instance_id)
        if state is not None:
            state.probing = False

    def state(self, instance_id: str) -> str:
        state = self._states.get(instance_id)
        if state is None or state.open_until is None:
            return CLOSED
        return OPEN if self.clock() < state.open_until else HALF_OPEN

    def retry_after_s(self, instance_ids) -> float:
        """Seconds until the first of these instances may take a probe again."""
        now = self.clock()
        waits = [state.open_until - now for i in instance_ids
                 if (state := self._states.get(i)) is not None and state.open_until is not None]
        return max(min(waits), 0.0) if waits else 0.0
