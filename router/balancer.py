"""Choosing an instance for one request: least outstanding requests, round-robin among equals, or the
instance a session sticks to.

Outstanding = this process's own in-flight requests to the instance + the engine's queue (`waiting`) at
its last heartbeat. Other router processes' requests reach us only through that queue gauge, so
replicas need no shared state (README, The data plane).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

from router.breaker import CircuitBreakers
from router.table import Candidate

LEAST_LOADED = "least-loaded"
AFFINITY = "affinity"
RETRY = "retry"


class Balancer:
    def __init__(self, breakers: CircuitBreakers) -> None:
        self.breakers = breakers
        self.in_flight: dict[str, int] = {}
        self._cursor = 0

    def pick(self, candidates: Sequence[Candidate], *, session_id: str | None = None,
             exclude: Collection[str] = ()) -> tuple[Candidate, str] | None:
        """The instance for the next attempt and why, or None when every candidate is excluded or its
        breaker is open. `exclude`: instances that already failed this request."""
        if session_id and not exclude:
            chosen = self._by_affinity(candidates, session_id)
            if chosen is not None:
                return chosen, AFFINITY
        chosen = self._least_loaded(candidates, exclude)
        if chosen is None:
            return None
        return chosen, RETRY if exclude else LEAST_LOADED

    def started(self, instance_id: str) -> None:
        self.in_flight[instance_id] = self.in_flight.get(instance_id, 0) + 1
        self.breakers.on_selected(instance_id)

    def finished(self, instance_id: str) -> None:
        # The attempt's verdict is already with the breaker; a half-open probe cut short (cancelled) must
        # not keep the instance closed to every later request.
        self.breakers.release_probe(instance_id)
        left = self.in_flight.get(instance_id, 0) - 1
        if left > 0:
            self.in_flight[instance_id] = left
        else:
            self.in_flight.pop(instance_id, None)

    def _least_loaded(self, candidates: Sequence[Candidate], exclude: Collection[str]) -> Candidate | None:
        count = len(candidates)
        # Scanning from a moving start makes the first of several equally loaded instances rotate.
        start = self._cursor
        self._cursor += 1
        in_flight, available = self.in_flight, self.breakers.available
        best, best_load = None, None
        for offset in range(count):
            candidate = candidates[(start + offset) % count]
            instance_id = candidate.instance_id
            if instance_id in exclude or not available(instance_id):
                continue
            load = in_flight.get(instance_id, 0) + candidate.waiting
            if best_load is None or load < best_load:
                best, best_load = candidate, load
        return best

    def _by_affinity(self, candidates: Sequence[Candidate], session_id: str) -> Candidate | None:
        """Rendezvous hashing: the candidate with the highest hash of (session, instance). When an
        instance leaves, only its own sessions move; when one joins, it takes a fair share only."""
        best, best_score = None, b""
        for candidate in candidates:
            if not self.breakers.available(candidate.instance_id):
                continue
            score = hashlib.blake2b(f"{session_id}|{candidate.instance_id}".encode(), digest_size=8).digest()
            if score > best_score:
                best, best_score = candidate, score
        return best
