"""Trace-driven simulation of the autoscaling policy on a simulated clock.

    .venv/bin/python bench/autoscaling.py [--instance-type L4] [--seed 42]

Every 10 s tick: the trace gives the offered load (concurrent requests wanted), a fluid M/M/c-ish
queue turns it and the ready instances into in-flight, waiting and TTFT p95, `decide` picks a size,
and the simulator starts instances (ready after the type's boot time) or removes them (starting ones
first). Per trace and policy it prints: seconds from the load step to the first scale-up decision,
seconds with TTFT p95 above the objective, GPU-hours against an oracle that knows the future
(ceil(load / target) instances, each started one boot time ahead), direction changes per hour, and
requests dropped (the hold queue is unbounded, so 0).
"""

from __future__ import annotations

import argparse
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

BASE = PolicySettings(min_size=1, max_size=64, target_in_flight_per_instance=TARGET, ttft_p95_objective_s=TTFT_OBJECTIVE_S)
POLICIES = {
    "default": BASE,
    "aggressive": replace(
        BASE, min_size=0, stable_window_s=60, panic_window_s=20, max_scale_up_factor=4.0,
        scale_down_cooldown_s=120, scale_to_zero=True, idle_period_s=300,
    ),
    "conservative": replace(BASE, stable_window_s=300, panic_threshold=3.0, max_scale_up_factor=1.5, scale_down_cooldown_s=600),
}


def make_traces(seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    ticks = lambda hours: range(int(hours * HOUR_S / TICK_S))  # noqa: E731
    return {
        "step": [4.0 if i * TICK_S < STEP_AT_S else 40.0 for i in ticks(2)],
        "spike": [60.0 if 1800 <= i * TICK_S < 1920 else 8.0 for i in ticks(2)],
        "diurnal": [max(0.0, 30 * math.sin(2 * math.pi * i * TICK_S / (24 * HOUR_S))) for i in ticks(24)],
        "noisy-flat": [max(0.0, 14 * (1 + 0.25 * rng.gauss(0, 1))) for _ in ticks(6)],
    }


def queue_signals(load: float, queue: float, ready: int) -> tuple[float, float, float, float | None]:
    """One tick of the fluid queue: return (in_flight, new_queue, served capacity use, ttft_p95)."""
    arrivals = load / SERVICE_S * TICK_S
    capacity = ready * SLOTS_PER_INSTANCE / SERVICE_S * TICK_S
    served = min(arrivals + queue, capacity)
    queue = arrivals + queue - served
    in_flight = min(load, ready * SLOTS_PER_INSTANCE)
    if ready == 0:
        return in_flight, queue, 0.0, (math.inf if load or queue else None)
    utilisation = min(load / (ready * SLOTS_PER_INSTANCE), MAX_UTILISATION)
    wait_s = queue / (capacity / TICK_S)
    return in_flight, queue, utilisation, (PREFILL_S / (1 - utilisation) + wait_s) * P95_OVER_MEAN


def simulate(settings: PolicySettings, loads: list[float], boot_s: float, seed: int) -> dict:
    rng = random.Random(seed)
    # Start warm, sized for the first tick's load, so the figures measure reactions, not a cold start.
    ready_at = [0.0] * max(settings.min_size, math.ceil(loads[0] / TARGET), 1)  # boot finish time per instance
    state, queue, sizes = PolicyState(), 0.0, []
    gpu_s = slo_miss_s = 0.0
    reaction_s = None
    for i, load in enumerate(loads):
        now = i * TICK_S
        ready = sum(1 for t in ready_at if t <= now)
        starting = len(ready_at) - ready
        offered = rng.gauss(load, math.sqrt(load)) if load else 0.0  # Poisson-ish arrivals
        in_flight, queue, _, ttft = queue_signals(max(offered, 0.0), queue, ready)
        if ttft is not None and ttft > TTFT_OBJECTIVE_S:
            slo_miss_s += TICK_S
        signals = Signals(
            now=now, ready=ready, starting=starting, in_flight=round(in_flight),
            waiting=round(queue) if ready else 0, held_requests=0 if ready else math.ceil(queue),
            ttft_p95_s=None if ttft in (None, math.inf) else ttft,
        )
        decision = decide(settings, signals, state)
        state, desired = decision.state, decision.desired_size
        if reaction_s is None and now >= STEP_AT_S and desired > len(ready_at):
            reaction_s = now - STEP_AT_S
        if desired > len(ready_at):
            ready_at += [now + boot_s] * (desired - len(ready_at))
        elif desired < len(ready_at):
            ready_at = sorted(ready_at)[:desired]  # cancel the newest (still booting) first
        sizes.append(len(ready_at))
        gpu_s += len(ready_at) * TICK_S
    return {"reaction_s": reaction_s, "slo_miss_s": slo_miss_s, "gpu_h": gpu_s / HOUR_S, "sizes": sizes}


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
    header = f"{'type':5} {'trace':10} {'policy':12} {'react s':>7} {'s>SLO':>6} {'GPU-h':>7} {'oracle':>7} {'ratio':>5} {'flips/h':>7} {'drop':>4}"
    print(f"target {TARGET} in flight/instance, TTFT p95 objective {TTFT_OBJECTIVE_S} s, {TICK_S:.0f} s ticks")
    print(header)
    print("-" * len(header))
    for instance_type in types:
        boot_s = BOOT_S[instance_type]
        for trace, loads in traces.items():
            for name, settings in POLICIES.items():
                result = simulate(settings, loads, boot_s, args.seed)
                oracle = oracle_gpu_hours(settings, loads, boot_s)
                react = "-" if trace != "step" or result["reaction_s"] is None else f"{result['reaction_s']:.0f}"
                print(
                    f"{instance_type:5} {trace:10} {name:12} {react:>7} {result['slo_miss_s']:>6.0f} "
                    f"{result['gpu_h']:>7.1f} {oracle:>7.1f} {result['gpu_h'] / oracle:>5.2f} "
                    f"{direction_changes_per_hour(result['sizes']):>7.2f} {0:>4}"
                )


if __name__ == "__main__":
    main()
