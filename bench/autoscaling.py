"""Trace-driven simulation of the autoscaling policy on a simulated clock.

    .venv/bin/python bench/autoscaling.py [--instance-type L4] [--seed 42]

Every 10 s tick: the trace gives the offered load (concurrent requests wanted), a fluid M/M/c-ish
queue turns it and the ready instances into in-flight, waiting and TTFT p95, `decide` picks a size,
and the simulator starts instances (ready after the type's boot time) or removes them (starting ones
first; ready ones are drained, so removing them loses nothing). The policy state goes through
`to_json` / `from_json` between ticks, as the autoscaler stores it. While no instance is ready the
router holds requests, with the Pool's default hold limits; a request held too long, or past a full
hold queue, is dropped (so a scale from zero on a type that boots for longer than the hold timeout,
H100 here, drops requests whatever the policy decides).

Per trace and policy it prints: seconds from the load rise (the steps, the spike) to the first scale-up
decision, seconds with TTFT p95 above the objective, the largest size reached, GPU-hours against an
oracle that knows the future (ceil(load / target) instances, each started one boot time ahead) and
their ratio, direction changes per hour, and requests dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoscaling.policy import PolicySettings, PolicyState, Signals, decide  # noqa: E402

TICK_S = 10.0
HOUR_S = 3600.0
BOOT_S = {"Mock": 90.0, "L4": 300.0, "H100": 420.0}
TARGET = 4  # in flight per instance the policy aims at
SLOTS_PER_INSTANCE = 8  # concurrent requests one instance can batch
SERVICE_S = 4.0  # mean request duration
PREFILL_S = 0.15  # mean TTFT of an idle instance: p95 0.9 s at target load, 2.2 s at 80 %
P95_OVER_MEAN = math.log(20)  # exponential tail: p95 = mean * ln 20
MAX_UTILISATION = 0.98
TTFT_OBJECTIVE_S = 2.0
STEP_AT_S = 1200.0
SPIKE_AT_S = 1800.0
RISE_AT_S = {"step": STEP_AT_S, "small-step": STEP_AT_S, "spike": SPIKE_AT_S}
# The Pool's defaults (autoscaling.models): the router holds this many requests, this long, at zero.
HOLD_QUEUE_SIZE = 100
HOLD_TIMEOUT_S = 600.0  # autoscaling.models.DEFAULT_HOLD_TIMEOUT_S

# The policy's defaults, which are the Pool's as autoscaling.services maps them: panic window 60 s,
# stable window 180 s, and a scale-down cooldown of one stable window.
BASE = PolicySettings(
    min_size=1, max_size=64, target_in_flight_per_instance=TARGET, ttft_p95_objective_s=TTFT_OBJECTIVE_S,
)
POLICIES = {
    "default": BASE,
    "aggressive": replace(
        BASE, min_size=0, stable_window_s=60, panic_window_s=20, max_scale_up_factor=4.0,
        scale_down_cooldown_s=120, scale_to_zero=True, idle_period_s=300,
    ),
    "conservative": replace(
        BASE, stable_window_s=300, panic_threshold=3.0, max_scale_up_factor=1.5, scale_down_cooldown_s=600,
    ),
    # A target the instances cannot carry within the TTFT objective (7 of 8 slots: p95 3.6 s), so
    # TTFT pressure, not the load target, sets the size.
    "optimistic": replace(BASE, target_in_flight_per_instance=7),
}


def make_traces(seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    ticks = lambda hours: range(int(hours * HOUR_S / TICK_S))  # noqa: E731
    return {
        "step": [4.0 if i * TICK_S < STEP_AT_S else 40.0 for i in ticks(2)],
        # 2.5x: more than the pool carries, less than the panic threshold at first.
        "small-step": [8.0 if i * TICK_S < STEP_AT_S else 20.0 for i in ticks(2)],
        "spike": [60.0 if SPIKE_AT_S <= i * TICK_S < SPIKE_AT_S + 120 else 8.0 for i in ticks(2)],
        "diurnal": [max(0.0, 30 * math.sin(2 * math.pi * i * TICK_S / (24 * HOUR_S))) for i in ticks(24)],
        "noisy-flat": [max(0.0, 14 * (1 + 0.25 * rng.gauss(0, 1))) for _ in ticks(6)],
        # Light traffic for 10 minutes each hour, nothing in between: scale from zero and held requests.
        "idle-burst": [1.0 if i * TICK_S % HOUR_S < 600 else 0.0 for i in ticks(4)],
    }


def queue_signals(load: float, queue: float, ready: int) -> tuple[float, float, float]:
    """One tick of the fluid queue on `ready` (> 0) instances: return (in_flight, new_queue, ttft_p95)."""
    arrivals = load / SERVICE_S * TICK_S
    capacity = ready * SLOTS_PER_INSTANCE / SERVICE_S * TICK_S
    served = min(arrivals + queue, capacity)
    queue = arrivals + queue - served
    in_flight = min(load, ready * SLOTS_PER_INSTANCE)
    utilisation = min(load / (ready * SLOTS_PER_INSTANCE), MAX_UTILISATION)
    wait_s = queue / (capacity / TICK_S)
    return in_flight, queue, (PREFILL_S / (1 - utilisation) + wait_s) * P95_OVER_MEAN


class HoldQueue:
    """Requests the router holds while no instance is ready, as (arrival time, requests) cohorts."""

    def __init__(self):
        self.cohorts: list[tuple[float, float]] = []
        self.dropped = 0.0

    def hold(self, now: float, requests: float) -> None:
        self.cohorts.append((now, requests))
        excess = self.size - HOLD_QUEUE_SIZE
        if excess > 0:  # a full queue refuses the newest
            self.dropped += excess
            self.cohorts[-1] = (now, requests - excess)

    def expire(self, now: float) -> None:
        self.dropped += sum(n for t, n in self.cohorts if now - t > HOLD_TIMEOUT_S)
        self.cohorts = [(t, n) for t, n in self.cohorts if now - t <= HOLD_TIMEOUT_S]

    def release(self) -> float:
        released, self.cohorts = self.size, []
        return released

    @property
    def size(self) -> float:
        return sum(n for t, n in self.cohorts)


def through_json(state: PolicyState) -> PolicyState:
    """The state as the autoscaler keeps it between ticks: in a JSON column."""
    return PolicyState.from_json(json.loads(json.dumps(state.to_json())))


def simulate(settings: PolicySettings, loads: list[float], boot_s: float, seed: int, rise_at: float | None) -> dict:
    rng = random.Random(seed)
    # Start warm, sized for the first tick's load, so the figures measure reactions, not a cold start.
    ready_at = [0.0] * max(settings.min_size, math.ceil(loads[0] / TARGET), 1)  # boot finish time per instance
    state, queue, held, sizes = PolicyState(), 0.0, HoldQueue(), []
    gpu_s = slo_miss_s = 0.0
    reaction_s = None
    for i, load in enumerate(loads):
        now = i * TICK_S
        ready = sum(1 for t in ready_at if t <= now)
        starting = len(ready_at) - ready
        offered = max(rng.gauss(load, math.sqrt(load)), 0.0) if load else 0.0  # Poisson-ish arrivals
        held.expire(now)
        if ready:
            in_flight, queue, ttft = queue_signals(offered, queue + held.release(), ready)
        else:
            held.hold(now, offered / SERVICE_S * TICK_S + queue)
            in_flight, queue, ttft = 0.0, 0.0, (math.inf if held.size else None)
        if ttft is not None and ttft > TTFT_OBJECTIVE_S:
            slo_miss_s += TICK_S
        signals = Signals(
            now=now, ready=ready, starting=starting, in_flight=round(in_flight), waiting=round(queue),
            held_requests=math.ceil(held.size), ttft_p95_s=None if ttft in (None, math.inf) else ttft,
        )
        decision = decide(settings, signals, state)
        state, desired = through_json(decision.state), decision.desired_size
        if reaction_s is None and rise_at is not None and now >= rise_at and desired > len(ready_at):
            reaction_s = now - rise_at
        if desired > len(ready_at):
            ready_at += [now + boot_s] * (desired - len(ready_at))
        elif desired < len(ready_at):
            ready_at = sorted(ready_at)[:desired]  # cancel the newest (still booting) first
        sizes.append(len(ready_at))
        gpu_s += len(ready_at) * TICK_S
    return {"reaction_s": reaction_s, "slo_miss_s": slo_miss_s, "gpu_h": gpu_s / HOUR_S, "sizes": sizes,
            "dropped": held.dropped}


def oracle_gpu_hours(settings: PolicySettings, loads: list[float], boot_s: float) -> float:
    needed = [max(math.ceil(load / TARGET), settings.min_size) for load in loads]
    ahead = math.ceil(boot_s / TICK_S)
    return sum(max(needed[i:i + ahead + 1]) for i in range(len(needed))) * TICK_S / HOUR_S


def direction_changes_per_hour(sizes: list[int]) -> float:
    steps = [b - a for a, b in zip(sizes, sizes[1:]) if b != a]
    flips = sum(1 for a, b in zip(steps, steps[1:]) if (a > 0) != (b > 0))
    return flips / (len(sizes) * TICK_S / HOUR_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance-type", choices=[*BOOT_S, "all"], default="L4")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    types = list(BOOT_S) if args.instance_type == "all" else [args.instance_type]
    traces = make_traces(args.seed)
    header = (f"{'type':5} {'trace':10} {'policy':12} {'react s':>7} {'s>SLO':>6} {'peak':>4} {'GPU-h':>7} "
              f"{'oracle':>7} {'ratio':>5} {'flips/h':>7} {'drop':>4}")
    print(f"target {TARGET} in flight/instance, TTFT p95 objective {TTFT_OBJECTIVE_S} s, {TICK_S:.0f} s ticks, "
          f"requests held at zero: {HOLD_QUEUE_SIZE} for {HOLD_TIMEOUT_S:.0f} s at most")
    print(header)
    print("-" * len(header))
    for instance_type in types:
        boot_s = BOOT_S[instance_type]
        for trace, loads in traces.items():
            for name, settings in POLICIES.items():
                result = simulate(settings, loads, boot_s, args.seed, RISE_AT_S.get(trace))
                oracle = oracle_gpu_hours(settings, loads, boot_s)
                react = "-" if result["reaction_s"] is None else f"{result['reaction_s']:.0f}"
                print(
                    f"{instance_type:5} {trace:10} {name:12} {react:>7} {result['slo_miss_s']:>6.0f} "
                    f"{max(result['sizes']):>4} {result['gpu_h']:>7.1f} {oracle:>7.1f} "
                    f"{result['gpu_h'] / oracle:>5.2f} {direction_changes_per_hour(result['sizes']):>7.2f} "
                    f"{result['dropped']:>4.0f}"
                )


if __name__ == "__main__":
    main()
