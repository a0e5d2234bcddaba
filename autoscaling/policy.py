"""The autoscaling decision, as one pure function.

`decide(settings, signals, state)` turns one tick's signals into a desired pool size and a short
reason naming the rule that decided. It keeps no clock and touches no database: the caller passes
`signals.now`, keeps the returned `PolicyState` and hands it back on the next tick.

The shape follows the peers' windows (REFERENCE.md section 7): a 180 s stable window, a 60 s panic
window at 2x target, steps of at most x2 up and /2 down, and a 300 s cooldown before scaling down.
Scale up has no cooldown by default, because 300 s scale-up delays are what users complain about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

DEFAULT_STABLE_WINDOW_S = 180.0
DEFAULT_PANIC_WINDOW_S = 60.0
DEFAULT_PANIC_THRESHOLD = 2.0
DEFAULT_MAX_SCALE_UP_FACTOR = 2.0
DEFAULT_MAX_SCALE_DOWN_FACTOR = 0.5
DEFAULT_SCALE_DOWN_COOLDOWN_S = 300.0
DEFAULT_IDLE_PERIOD_S = 600.0
DEFAULT_KV_CACHE_HIGH = 0.9


@dataclass(frozen=True)
class PolicySettings:
    min_size: int
    max_size: int
    target_in_flight_per_instance: float
    ttft_p95_objective_s: float | None = None
    stable_window_s: float = DEFAULT_STABLE_WINDOW_S
    panic_window_s: float = DEFAULT_PANIC_WINDOW_S
    panic_threshold: float = DEFAULT_PANIC_THRESHOLD
    max_scale_up_factor: float = DEFAULT_MAX_SCALE_UP_FACTOR
    max_scale_down_factor: float = DEFAULT_MAX_SCALE_DOWN_FACTOR
    scale_up_cooldown_s: float = 0.0
    scale_down_cooldown_s: float = DEFAULT_SCALE_DOWN_COOLDOWN_S
    scale_to_zero: bool = False
    idle_period_s: float = DEFAULT_IDLE_PERIOD_S
    kv_cache_high: float = DEFAULT_KV_CACHE_HIGH

    def __post_init__(self):
        # Fail loudly: a pool with these settings would never scale sensibly.
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError(f"need 0 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if self.target_in_flight_per_instance <= 0:
            raise ValueError("target_in_flight_per_instance must be positive")
        if self.panic_window_s > self.stable_window_s:
            raise ValueError("panic_window_s must not exceed stable_window_s")
        if self.max_scale_up_factor <= 1 or not 0 < self.max_scale_down_factor < 1:
            raise ValueError("need max_scale_up_factor > 1 and 0 < max_scale_down_factor < 1")


@dataclass(frozen=True)
class Signals:
    now: float
    ready: int
    starting: int
    in_flight: int
    waiting: int
    ttft_p95_s: float | None = None
    held_requests: int = 0
    kv_cache_usage: float | None = None

    @property
    def load(self) -> int:
        # Held requests are demand too: they are what a pool at zero must serve first.
        return self.in_flight + self.waiting + self.held_requests


@dataclass(frozen=True)
class PolicyState:
    """History between ticks. Samples are (time, total load): dividing by the pool size happens at
    decision time, so a change of size does not rewrite the past."""

    samples: tuple[tuple[float, float], ...] = ()
    started_at: float | None = None
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None
    last_traffic_at: float | None = None


@dataclass(frozen=True)
class Decision:
    desired_size: int
    reason: str
    state: PolicyState = field(repr=False)


def decide(settings: PolicySettings, signals: Signals, state: PolicyState) -> Decision:
    """Return the size the pool should have now, why, and the state to pass to the next call.

    Instances still starting count as capacity, so a pool that is booting is not scaled up again
    for the same load. The returned state assumes the caller applies the decision.
    """
    now = signals.now
    current = signals.ready + signals.starting
    load = signals.load
    samples = tuple(s for s in state.samples if s[0] >= now - settings.stable_window_s) + ((now, load),)
    state = replace(
        state,
        samples=samples,
        started_at=now if state.started_at is None else state.started_at,
        last_traffic_at=now if load > 0 or state.last_traffic_at is None else state.last_traffic_at,
    )
    desired, reason = _wanted_size(settings, signals, state, current)
    floor = settings.min_size if settings.scale_to_zero else max(settings.min_size, 1)
    if desired > settings.max_size:
        desired, reason = settings.max_size, f"at max ({settings.max_size}); {reason}"
    elif desired < floor:
        desired, reason = floor, f"at min ({floor}); {reason}"
    if desired > current:
        state = replace(state, last_scale_up_at=now)
    elif desired < current:
        state = replace(state, last_scale_down_at=now)
    return Decision(desired_size=desired, reason=reason, state=state)


def _wanted_size(settings, signals, state, current) -> tuple[int, str]:
    now = signals.now
    target = settings.target_in_flight_per_instance
    if current == 0:
        if signals.load > 0:
            # Nothing can serve: start one at once; the windows take over once it boots.
            return max(1, settings.min_size), f"hold: {signals.load} requests waiting at zero"
        return 0, "idle at zero"

    stable_avg = _mean(load for t, load in state.samples)
    panic_avg = _mean(load for t, load in state.samples if t >= now - settings.panic_window_s)
    up_limit = max(current + 1, math.ceil(current * settings.max_scale_up_factor))
    up_blocked = _since(now, state.last_scale_up_at) < settings.scale_up_cooldown_s

    if panic_avg / current >= settings.panic_threshold * target:
        if up_blocked:
            return current, "cooldown: scale up"
        wanted = min(math.ceil(panic_avg / target), up_limit)
        return wanted, f"panic: load {panic_avg / current / target:.1f}x target over {settings.panic_window_s:.0f} s"

    stable_want = math.ceil(stable_avg / target)
    stable_reason = f"stable: {stable_avg / current:.1f} in flight per instance over {settings.stable_window_s:.0f} s"
    if stable_want > current:
        if up_blocked:
            return current, "cooldown: scale up"
        return min(stable_want, up_limit), stable_reason

    pressure = _pressure(settings, signals)
    if pressure:
        if signals.starting > 0:
            # The instance already booting is the added capacity; adding another would double it.
            return current, f"{pressure}; {signals.starting} starting"
        if up_blocked:
            return current, "cooldown: scale up"
        return current + 1, pressure

    idle_s = now - state.last_traffic_at
    if settings.scale_to_zero and settings.min_size == 0 and idle_s >= settings.idle_period_s:
        return 0, f"idle {idle_s:.0f} s: scale to zero"

    # Scale down only on the busiest moment of the whole window: noise that dips for a tick or two
    # then must not undo a scale up (no flapping under flat load).
    peak_want = math.ceil(max(load for t, load in state.samples) / target)
    if peak_want >= current:
        return current, stable_reason
    last_change = min(_since(now, state.last_scale_up_at), _since(now, state.last_scale_down_at))
    if now - state.started_at < settings.stable_window_s:
        return current, f"warming up: {now - state.started_at:.0f} s of {settings.stable_window_s:.0f} s window"
    if last_change < settings.scale_down_cooldown_s:
        return current, f"cooldown: {last_change:.0f} s since last change < {settings.scale_down_cooldown_s:.0f} s"
    down_limit = math.ceil(current * settings.max_scale_down_factor)
    return max(peak_want, down_limit, 1), stable_reason


def _pressure(settings, signals) -> str:
    objective = settings.ttft_p95_objective_s
    if objective is not None and signals.ttft_p95_s is not None and signals.ttft_p95_s > objective:
        return f"ttft: p95 {signals.ttft_p95_s:.1f} s above {objective:.1f} s objective"
    if signals.kv_cache_usage is not None and signals.kv_cache_usage > settings.kv_cache_high:
        return f"kv cache: {signals.kv_cache_usage:.0%} above {settings.kv_cache_high:.0%}"
    return ""


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _since(now: float, then: float | None) -> float:
    return math.inf if then is None else now - then
