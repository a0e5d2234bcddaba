"""Choosing an instance for one request, and saying why (`X-Inventiv-Route-Reason`, the trace's
`route_reason`):

- `affinity`: the request names a session (`X-Session-Id`): the instance the session hashes to;
- `prefix`: cache-aware routing found the instance that holds the longest run of the prompt's prefix
  (router/prefixes.py), among the instances that may serve it;
- `prefix-hash`: no instance is known to hold more of the conversation than its opening (a new
  conversation, or earlier turns routed by another replica): the instance the opening hashes to, so
  that all its turns, through any router replica, meet the same cache;
- `prefix-overloaded`: the instance cache-aware routing preferred is overloaded: least loaded instead;
- `least-loaded`: least outstanding requests, round-robin among equals (nothing else to go by);
- `round-robin`: each instance in turn (ROUTER_ROUTING=round-robin, for comparisons);
- `retry`: the least-loaded instance not yet tried, after a failed attempt.

Outstanding = this process's own in-flight requests to the instance + the engine's queue (`waiting`) at
its last heartbeat. Other router processes' requests reach us only through that queue gauge, so
replicas need no shared state on the request path (README, The data plane).

An instance is overloaded when its load is above `load_factor` x the mean load (this request
included) + `load_slack`: consistent hashing with bounded loads, which keeps a popular prefix from
piling work on one engine while others idle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

from router.breaker import CircuitBreakers
from router.prefixes import NO_PREFIX, Prefix, PrefixIndex
from router.table import Candidate

AFFINITY = "affinity"
PREFIX = "prefix"
PREFIX_HASH = "prefix-hash"
PREFIX_OVERLOADED = "prefix-overloaded"
LEAST_LOADED = "least-loaded"
ROUND_ROBIN = "round-robin"
RETRY = "retry"

# Routing policies (ROUTER_ROUTING).
CACHE_AWARE = "cache-aware"
POLICIES = (CACHE_AWARE, LEAST_LOADED, ROUND_ROBIN)

PREFIX_LOAD_FACTOR = 1.5
PREFIX_LOAD_SLACK = 2.0


class Balancer:
    def __init__(self, breakers: CircuitBreakers, *, policy: str = CACHE_AWARE,
                 prefixes: PrefixIndex | None = None, load_factor: float = PREFIX_LOAD_FACTOR,
                 load_slack: float = PREFIX_LOAD_SLACK) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown routing policy {policy!r}; known: {', '.join(POLICIES)}")
        self.breakers = breakers
        self.policy = policy
        self.prefixes = prefixes if prefixes is not None else PrefixIndex()
        self.load_factor = load_factor
        self.load_slack = load_slack
        self.in_flight: dict[str, int] = {}
        self._cursor = 0

    def pick(self, candidates: Sequence[Candidate], *, session_id: str | None = None, prefix: Prefix = NO_PREFIX,
             exclude: Collection[str] = ()) -> tuple[Candidate, str] | None:
        """The instance for the next attempt and why, or None when every candidate is excluded or its
        breaker is open. `exclude`: instances that already failed this request."""
        if exclude:
            chosen = self._least_loaded(candidates, exclude)
            return None if chosen is None else (chosen, RETRY)
        if session_id:
            chosen = self._by_affinity(candidates, session_id)
            if chosen is not None:
                return chosen, AFFINITY
        if self.policy == ROUND_ROBIN:
            chosen = self._round_robin(candidates)
            return None if chosen is None else (chosen, ROUND_ROBIN)
        if self.policy == CACHE_AWARE and prefix.names:
            return self._by_prefix(candidates, prefix)
        chosen = self._least_loaded(candidates, ())
        return None if chosen is None else (chosen, LEAST_LOADED)

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

    def retain(self, instance_ids: Collection[str]) -> None:
        """The routing table changed: forget what was routed to instances no longer in it."""
        self.prefixes.retain(instance_ids)

    def _load(self, candidate: Candidate) -> int:
        return self.in_flight.get(candidate.instance_id, 0) + candidate.waiting

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

    def _round_robin(self, candidates: Sequence[Candidate]) -> Candidate | None:
        count = len(candidates)
        for _ in range(count):
            candidate = candidates[self._cursor % count]
            self._cursor += 1
            if self.breakers.available(candidate.instance_id):
                return candidate
        return None

    def _by_prefix(self, candidates: Sequence[Candidate], prefix: Prefix) -> tuple[Candidate, str] | None:
        available = [c for c in candidates if self.breakers.available(c.instance_id)]
        if not available:
            return None
        preferred, reason = None, LEAST_LOADED
        by_id = {c.instance_id: c for c in available}
        holders, depth = self.prefixes.longest(prefix.names, by_id)
        if holders and len(holders) < len(available) and depth >= prefix.anchor_blocks:
            preferred = min((by_id[i] for i in holders), key=self._load)
            reason = PREFIX
        elif prefix.anchor is not None:
            preferred = _rendezvous(prefix.anchor, available)
            reason = PREFIX_HASH
        if preferred is not None and self._overloaded(preferred, available):
            preferred, reason = None, PREFIX_OVERLOADED
        chosen = preferred or self._least_loaded(available, ())
        self.prefixes.record(chosen.instance_id, prefix.names)
        return chosen, reason

    def _overloaded(self, candidate: Candidate, available: Sequence[Candidate]) -> bool:
        mean = (sum(self._load(c) for c in available) + 1) / len(available)
        return self._load(candidate) + 1 > self.load_factor * mean + self.load_slack

    def _by_affinity(self, candidates: Sequence[Candidate], session_id: str) -> Candidate | None:
        """Rendezvous hashing: when an instance leaves, only its own sessions move; when one joins, it
        takes a fair share only."""
        return _rendezvous(session_id.encode(), [c for c in candidates if self.breakers.available(c.instance_id)])


def _rendezvous(key: bytes, candidates: Sequence[Candidate]) -> Candidate | None:
    """The candidate with the highest hash of (key, instance): stable across processes and restarts."""
    best, best_score = None, b""
    for candidate in candidates:
        score = hashlib.blake2b(key + b"|" + candidate.instance_id.encode(), digest_size=8).digest()
        if score > best_score:
            best, best_score = candidate, score
    return best
