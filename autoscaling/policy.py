"""The autoscaling decision, as one pure function.

`decide(settings, signals, state)` turns one tick's signals into a desired pool size and a short
reason naming the rule that decided ("rule: details"). It keeps no clock and touches no database: the
caller passes `signals.now`, stores the returned `PolicyState` (`to_json`, `from_json`) and hands it
back on the next tick.

The shape follows the peers' windows (README, "Autoscaling"): a 180 s stable window, a 60 s panic
window at 2x target, steps of at most x2 up and /2 down. Scale up has no cooldown by default, because
300 s scale-up delays are what users complain about. What keeps the pool from moving for nothing:
- Instances still starting count as capacity, and a scale up is sized once: while anything starts,
  the pool only finishes a step that the x2 limit cut short, and queued requests do not count as load
  (they wait for the starting instances). Only a new surge sizes again: arrivals over the panic window
  at the panic threshold of the size being booted to. A surge is sized on what arrives now (served,
  plus queued since the last tick), not on the whole queue built so far.
- A queue shorter than at the last tick is a backlog being served: it does not grow the pool, and once
  served it no longer counts in the windows. Nothing scales down while a queue or a boot is pending.
- TTFT or KV-cache pressure adds one instance only when it is seen on most ticks of the panic window
  (one slow tick is noise), and not while an instance is starting. The load per instance that needed
  it is remembered for `pressure_memory_s`: no scale down brings it back meanwhile.
- Scale down follows the busiest moment of the stable window, after a cooldown that is the stable
  window itself unless `scale_down_cooldown_s` is given, so each step down is judged on a whole window
  measured at the size the previous change left. (The peers wait 300 s; pass it to get that.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

DEFAULT_STABLE_WINDOW_S = 180.0
DEFAULT_PANIC_WINDOW_S = 60.0
DEFAULT_PANIC_THRESHOLD = 2.0
DEFAULT_MAX_SCALE_UP_FACTOR = 2.0
DEFAULT_MAX_SCALE_DOWN_FACTOR = 0.5
DEFAULT_IDLE_PERIOD_S = 600.0
DEFAULT_KV_CACHE_HIGH = 0.9
DEFAULT_PRESSURE_MEMORY_S = 3600.0


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
    scale_down_cooldown_s: float | None = None  # None: the stable window (`down_cooldown_s`)
    scale_to_zero: bool = False
    idle_period_s: float = DEFAULT_IDLE_PERIOD_S
    kv_cache_high: float = DEFAULT_KV_CACHE_HIGH
    pressure_memory_s: float = DEFAULT_PRESSURE_MEMORY_S

    def __post_init__(self):
        # Fail loudly: a pool with these settings would never scale sensibly.
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError(f"need 0 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if self.target_in_flight_per_instance <= 0:
            raise ValueError("target_in_flight_per_instance must be positive")
        durations = (self.stable_window_s, self.panic_window_s, self.scale_up_cooldown_s, self.down_cooldown_s,
                     self.idle_period_s, self.pressure_memory_s)
        if min(durations) < 0:
            raise ValueError("windows, cooldowns and periods must not be negative")
        if self.panic_window_s > self.stable_window_s:
            raise ValueError("panic_window_s must not exceed stable_window_s")
        if self.max_scale_up_factor <= 1 or not 0 < self.max_scale_down_factor < 1:
            raise ValueError("need max_scale_up_factor > 1 and 0 < max_scale_down_factor < 1")

    @property
    def down_cooldown_s(self) -> float:
        """Time after any change before a scale down: `scale_down_cooldown_s`, else the stable window."""
        return self.stable_window_s if self.scale_down_cooldown_s is None else self.scale_down_cooldown_s


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

    @property
    def queued(self) -> int:
        """Requests not being served yet: waiting on an instance, or held by the router at zero."""
        return self.waiting + self.held_requests


class Sample(NamedTuple):
    """One tick: total load (dividing by the pool size happens at decision time, so a change of size
    does not rewrite the past), how much of it queued, and whether TTFT or the KV cache was under
    pressure."""

    t: float
    load: float
    queued: float
    pressured: bool


_TIMES = ("started_at", "last_scale_up_at", "last_scale_down_at", "last_traffic_at", "pressure_ceiling_at")


@dataclass(frozen=True)
class PolicyState:
    """History between ticks."""

    samples: tuple[Sample, ...] = ()
    started_at: float | None = None
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None
    last_traffic_at: float | None = None
    # The size the last surge aimed at, kept while the instances it ordered boot.
    booting_to: int | None = None
    # Load per instance under which sustained pressure made the pool grow, and when.
    pressure_ceiling: float | None = None
    pressure_ceiling_at: float | None = None

    def to_json(self) -> dict:
        """Numbers, None and lists only, for a JSON column."""
        return {
            "samples": [[s.t, s.load, s.queued, int(s.pressured)] for s in self.samples],
            "booting_to": self.booting_to,
            "pressure_ceiling": self.pressure_ceiling,
            **{name: getattr(self, name) for name in _TIMES},
        }

    @classmethod
    def from_json(cls, data: dict | None) -> PolicyState:
        """The state `to_json` wrote. None, {}, and a missing or unreadable key give that key's fresh
        value: at worst the pool waits a stable window before it scales down again."""
        if not isinstance(data, dict):
            return cls()
        rows = data.get("samples")
        samples = tuple(
            Sample(float(row[0]), float(row[1]), float(row[2]), bool(row[3]))
            for row in (rows if isinstance(rows, list) else [])
            if isinstance(row, list) and len(row) == len(Sample._fields) and all(map(_is_number, row))
        )
        booting_to = data.get("booting_to")
        return cls(
            samples=samples,
            booting_to=int(booting_to) if _is_number(booting_to) else None,
            pressure_ceiling=_number_or_none(data.get("pressure_ceiling")),
            **{name: _number_or_none(data.get(name)) for name in _TIMES},
        )


@dataclass(frozen=True)
class Decision:
    desired_size: int
    reason: str
    state: PolicyState = field(repr=False)


def decide(settings: PolicySettings, signals: Signals, state: PolicyState) -> Decision:
    """Return the size the pool should have now, why, and the state to pass to the next call.

    The returned state assumes the caller applies the decision.
    """
    now = signals.now
    current = signals.ready + signals.starting
    # The last sample is the previous tick's, even when it is older than the windows.
    queued_before = state.samples[-1].queued if state.samples else signals.queued
    draining = signals.queued < queued_before
    # Slow first tokens while a backlog drains are the backlog's, not a sign the instances are too few.
    pressure = "" if draining else _pressure(settings, signals)
    remembered = _since(now, state.pressure_ceiling_at) < settings.pressure_memory_s
    state = replace(
        state,
        # Pressure while an instance starts says nothing about the size the pool asked for.
        samples=tuple(s for s in state.samples if s.t >= now - settings.stable_window_s)
        + (Sample(now, signals.load, signals.queued, bool(pressure) and signals.starting == 0),),
        started_at=now if state.started_at is None else state.started_at,
        last_traffic_at=now if signals.load > 0 or state.last_traffic_at is None else state.last_traffic_at,
        # Nothing starting: what the last scale up ordered has booted (or failed), so the windows decide.
        booting_to=state.booting_to if signals.starting > 0 else None,
        pressure_ceiling=state.pressure_ceiling if remembered else None,
        pressure_ceiling_at=state.pressure_ceiling_at if remembered else None,
    )
    # A queue counts as load only while it grows with nothing starting: a shorter queue than at the
    # last tick is being served faster than requests arrive, and one that grows while instances boot
    # is waiting for them. Growing for either would add instances for the same load.
    queue_now = 0 if draining or signals.starting > 0 else signals.queued
    loads = [(s.t, s.load - s.queued + min(s.queued, queue_now)) for s in state.samples]
    wanted, reason, by_pressure = _wanted_size(settings, signals, state, loads, queued_before, pressure)

    desired = wanted
    if wanted > current:
        up_limit = max(current + 1, math.ceil(current * settings.max_scale_up_factor))
        if _since(now, state.last_scale_up_at) < settings.scale_up_cooldown_s:
            desired, reason = current, f"cooldown: scale up; {reason}"
        elif wanted > up_limit:
            desired, reason = up_limit, f"{reason}; x{settings.max_scale_up_factor:g} at most per step"
    floor = settings.min_size if settings.scale_to_zero else max(settings.min_size, 1)
    if desired > settings.max_size:
        desired, reason = settings.max_size, f"at max ({settings.max_size}); {reason}"
    elif desired < floor:
        desired, reason = floor, f"at min ({floor}); {reason}"

    if desired > current:
        booting_to = max(state.booting_to or 0, min(wanted, settings.max_size))
        state = replace(state, last_scale_up_at=now, booting_to=booting_to)
        if by_pressure:
            ceiling = _mean(load for t, load in loads if t >= now - settings.panic_window_s) / current
            if ceiling > 0:  # pressure without load says nothing about what one instance carries
                state = replace(state, pressure_ceiling=ceiling, pressure_ceiling_at=now)
    elif desired < current:
        state = replace(state, last_scale_down_at=now)
    return Decision(desired_size=desired, reason=reason, state=state)


def _wanted_size(settings, signals, state, loads, queued_before, pressure) -> tuple[int, str, bool]:
    """The size one rule asks for, why, and whether the rule was pressure."""
    now = signals.now
    current = signals.ready + signals.starting
    target = settings.target_in_flight_per_instance
    if current == 0:
        if signals.load > 0:
            # Nothing can serve: start one at once; the windows take over once it boots.
            return max(1, settings.min_size), f"hold: {signals.load} requests waiting at zero", False
        return 0, "idle at zero", False

    panic_avg = _mean(load for t, load in loads if t >= now - settings.panic_window_s)
    panic = f"panic: load {panic_avg / current / target:.1f}x target over {settings.panic_window_s:.0f} s"
    # A surge is sized on what arrives now (served, plus queued since the last tick), not on the
    # window's average, which still holds the calm before it, nor on the whole queue built so far.
    arriving = signals.load - min(signals.queued, queued_before)
    if signals.starting > 0:
        booting_to = max(current, state.booting_to or 0)
        arrived = _mean(_arrivals(state.samples, since=now - settings.panic_window_s))
        if arrived >= settings.panic_threshold * target * booting_to:
            reason = (f"panic: {arrived / booting_to / target:.1f}x target arriving over "
                      f"{settings.panic_window_s:.0f} s while {signals.starting} start")
            return math.ceil(max(arrived, arriving) / target), reason, False
        if booting_to > current:  # finish a step that the x2 limit cut short
            return booting_to, f"booting: {signals.starting} starting toward {booting_to}", False
    if panic_avg / current >= settings.panic_threshold * target:
        return max(math.ceil(arriving / target), current + 1), panic, False

    stable_avg = _mean(load for t, load in loads)
    stable_reason = f"stable: {stable_avg / current:.1f} in flight per instance over {settings.stable_window_s:.0f} s"
    if math.ceil(stable_avg / target) > current:
        return math.ceil(stable_avg / target), stable_reason, False

    if pressure:
        if signals.starting > 0:
            # The instance already booting is the added capacity; adding another would double it.
            return current, f"{pressure}; {signals.starting} starting", False
        # A slow tick now and then is noise; most of a panic window at this size is not.
        since = max(t for t in (state.started_at, state.last_scale_up_at, state.last_scale_down_at) if t is not None)
        if now - since < settings.panic_window_s:
            return current, f"{pressure}; {now - since:.0f} s at this size", False
        recent = [s for s in state.samples if s.t >= now - settings.panic_window_s and s.t > since]
        pressed = sum(s.pressured for s in recent)
        if 2 * pressed <= len(recent):
            return current, f"{pressure} on {pressed} of {len(recent)} ticks", False
        return current + 1, pressure, True

    idle_s = now - state.last_traffic_at
    if settings.scale_to_zero and settings.min_size == 0 and idle_s >= settings.idle_period_s:
        return 0, f"idle {idle_s:.0f} s: scale to zero", False
    return (*_smaller_size(settings, signals, state, current, stable_reason), False)


def _smaller_size(settings, signals, state, current, reason) -> tuple[int, str]:
    """Scale down, or stay. Only on the busiest moment of the whole stable window, queues included:
    noise that dips for a tick or two, or a backlog just served, must not undo a scale up."""
    now = signals.now
    peak = max(s.load for s in state.samples)
    down_to = max(math.ceil(peak / settings.target_in_flight_per_instance),
                  math.ceil(current * settings.max_scale_down_factor), 1)
    if down_to >= current:
        return current, reason
    if signals.queued > 0:
        return current, f"queue: {signals.queued} waiting"
    if signals.starting > 0:
        # What the pool asked for has not served yet: judge a smaller size once it has.
        return current, f"starting: {signals.starting} not ready yet"
    if now - state.started_at < settings.stable_window_s:
        return current, f"warming up: {now - state.started_at:.0f} s of {settings.stable_window_s:.0f} s window"
    last_change = min(_since(now, state.last_scale_up_at), _since(now, state.last_scale_down_at))
    if last_change < settings.down_cooldown_s:
        return current, f"cooldown: {last_change:.0f} s since last change < {settings.down_cooldown_s:.0f} s"
    ceiling = state.pressure_ceiling
    if ceiling and peak / down_to >= ceiling:
        # Fewer instances would carry the load per instance that needed the last pressure scale up.
        down_to = math.floor(peak / ceiling) + 1
        if down_to >= current:
            return current, f"pressure memory: {ceiling:.1f} per instance needed one more"
    return down_to, reason


def _arrivals(samples, *, since) -> list[float]:
    """What was served plus what newly queued, at each sample from `since`."""
    return [s.load - min(s.queued, before.queued) for before, s in zip(samples, samples[1:]) if s.t >= since]


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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_or_none(value) -> float | None:
    return float(value) if _is_number(value) else None
