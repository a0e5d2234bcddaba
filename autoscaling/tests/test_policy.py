import json
import math
import random

import pytest

from autoscaling.policy import Decision, PolicySettings, PolicyState, Signals, decide

TICK_S = 10.0
TARGET = 4
SLOW_TTFT_S = 3.5  # above the 2 s objective
FAST_TTFT_S = 0.8


def make_settings(**overrides) -> PolicySettings:
    values = dict(min_size=1, max_size=32, target_in_flight_per_instance=TARGET, ttft_p95_objective_s=2.0)
    values.update(overrides)
    return PolicySettings(**values)


def tick(settings, state, *, now, ready, load=0, starting=0, waiting=0, **signals) -> Decision:
    return decide(
        settings, Signals(now=now, ready=ready, starting=starting, in_flight=load, waiting=waiting, **signals), state
    )


def run(settings, loads, *, size, start=0.0, state=None, tick_s=TICK_S, ttfts=None):
    """Tick through `loads`, applying each decision at once; return sizes and final state. `ttfts` is
    one TTFT p95 per tick, or a function of the pool's size."""
    state = state or PolicyState()
    sizes = []
    for i, load in enumerate(loads):
        ttft = ttfts(size) if callable(ttfts) else ttfts[i] if ttfts else None
        decision = tick(settings, state, now=start + i * tick_s, ready=size, load=load, ttft_p95_s=ttft)
        size, state = decision.desired_size, decision.state
        sizes.append(size)
    return sizes, state


def boot(settings, state, *, start, ready, size, ticks, load, queue):
    """Tick while `ready` instances serve `load` and the rest of the pool boots; `queue(i)` is what
    waits at tick i. Return sizes and final state."""
    sizes = []
    for i in range(ticks):
        decision = tick(settings, state, now=start + i * TICK_S, ready=ready, starting=max(size - ready, 0),
                        load=load, waiting=queue(i), ttft_p95_s=60.0)
        size, state = decision.desired_size, decision.state
        sizes.append(size)
    return sizes, state


def growing_queue(i: int) -> int:
    """What waits i ticks into a surge that brings 60 more requests each tick than the pool serves."""
    return 60 * (i + 1)


def direction_changes(sizes) -> int:
    steps = [b - a for a, b in zip(sizes, sizes[1:]) if b != a]
    return sum(1 for a, b in zip(steps, steps[1:]) if (a > 0) != (b > 0))


def through_json(state: PolicyState) -> PolicyState:
    return PolicyState.from_json(json.loads(json.dumps(state.to_json())))


def holds_only_numbers_none_and_lists(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and holds_only_numbers_none_and_lists(v) for key, v in value.items())
    if isinstance(value, list):
        return all(map(holds_only_numbers_none_and_lists, value))
    return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)


# --- Scaling up -----------------------------------------------------------------------------


def test_it_decides_a_scale_up_within_one_tick_of_a_load_step():
    settings = make_settings()
    sizes, state = run(settings, [4] * 30, size=1)
    assert sizes[-1] == 1

    decision = tick(settings, state, now=30 * TICK_S, ready=1, load=40)

    assert decision.desired_size == 2
    assert decision.reason.startswith("panic: load")


def test_it_starts_one_instance_at_once_for_requests_held_at_zero():
    settings = make_settings(min_size=0, scale_to_zero=True)

    decision = decide(settings, Signals(now=0, ready=0, starting=0, in_flight=0, waiting=0, held_requests=3), PolicyState())

    assert decision.desired_size == 1
    assert decision.reason == "hold: 3 requests waiting at zero"


def test_it_holds_a_surge_at_one_size_while_its_instances_boot():
    settings = make_settings(max_size=64)
    _, state = run(settings, [8] * 18, size=2)

    # Two ready instances serve 16; the rest of the surge queues up for the whole boot.
    sizes, _ = boot(settings, state, start=18 * TICK_S, ready=2, size=2, ticks=30, load=16, queue=growing_queue)

    surge_size = math.ceil((16 + 60) / TARGET)
    assert sizes[:4] == [4, 8, 16, surge_size]
    assert set(sizes[4:]) == {surge_size}


def test_it_sizes_a_second_surge_that_arrives_while_the_first_one_boots():
    settings = make_settings(max_size=64)
    _, state = run(settings, [8] * 18, size=2)
    sizes, state = boot(settings, state, start=18 * TICK_S, ready=2, size=2, ticks=6, load=16, queue=growing_queue)

    # Ten times more arrives: the queue now grows by 600 each tick.
    more, _ = boot(settings, state, start=24 * TICK_S, ready=2, size=sizes[-1], ticks=6, load=16,
                   queue=lambda i: growing_queue(5) + 600 * (i + 1))

    assert sizes[-1] == math.ceil((16 + 60) / TARGET)
    assert more[-1] == settings.max_size


def test_it_keeps_one_instance_booting_from_zero_while_light_traffic_waits():
    settings = make_settings(min_size=0, scale_to_zero=True)
    state = decide(settings, Signals(now=0, ready=0, starting=0, in_flight=0, waiting=0, held_requests=1),
                   PolicyState()).state

    for i in range(1, 30):
        signals = Signals(now=i * TICK_S, ready=0, starting=1, in_flight=0, waiting=0, held_requests=1 + 2 * i)
        decision = decide(settings, signals, state)
        state = decision.state
        assert decision.desired_size == 1, decision.reason


def test_it_does_not_grow_for_a_backlog_that_is_draining():
    settings = make_settings(max_size=64)
    _, state = run(settings, [8] * 18, size=2)
    sizes, state = boot(settings, state, start=18 * TICK_S, ready=2, size=2, ticks=30, load=16, queue=growing_queue)
    size = sizes[-1]

    sizes, _ = boot(settings, state, start=48 * TICK_S, ready=size, size=size, ticks=12, load=40,
                    queue=lambda i: 1800 - 150 * (i + 1))

    assert sizes == [size] * 12


def test_it_sizes_a_surge_that_arrives_while_the_stable_window_grows_the_pool():
    settings = make_settings()
    sizes, state = run(settings, [17] * 18, size=4)
    assert sizes[-1] == 5

    decision = tick(settings, state, now=18 * TICK_S, ready=4, starting=1, load=32, waiting=200)

    assert decision.desired_size == 10
    assert decision.reason.startswith("panic:")


def test_it_does_not_add_for_pressure_while_an_instance_starts():
    settings = make_settings()
    _, state = run(settings, [8] * 19, size=2, ttfts=[FAST_TTFT_S] * 19)

    for i in range(30):
        decision = tick(settings, state, now=(19 + i) * TICK_S, ready=2, starting=1, load=8, ttft_p95_s=9.0)
        state = decision.state
        assert decision.desired_size == 3, decision.reason


def test_it_adds_one_instance_when_ttft_is_above_the_objective_for_most_of_the_panic_window():
    settings = make_settings()
    _, state = run(settings, [8] * 19, size=2, ttfts=[FAST_TTFT_S] * 16 + [SLOW_TTFT_S] * 3)

    decision = tick(settings, state, now=19 * TICK_S, ready=2, load=8, ttft_p95_s=SLOW_TTFT_S)

    assert decision.desired_size == 3
    assert decision.reason == "ttft: p95 3.5 s above 2.0 s objective"


def test_it_adds_one_instance_when_the_kv_cache_stays_nearly_full():
    settings = make_settings()
    _, state = run(settings, [8] * 12, size=2)
    for i in range(12, 15):
        state = tick(settings, state, now=i * TICK_S, ready=2, load=8, kv_cache_usage=0.97).state

    decision = tick(settings, state, now=15 * TICK_S, ready=2, load=8, kv_cache_usage=0.97)

    assert decision.desired_size == 3


def test_it_ignores_a_slow_tick_now_and_then():
    settings = make_settings()
    _, state = run(settings, [8] * 19, size=2, ttfts=[FAST_TTFT_S, FAST_TTFT_S, SLOW_TTFT_S] * 6 + [FAST_TTFT_S])

    decision = tick(settings, state, now=19 * TICK_S, ready=2, load=8, ttft_p95_s=SLOW_TTFT_S)

    assert decision.desired_size == 2
    assert decision.reason == "ttft: p95 3.5 s above 2.0 s objective on 3 of 7 ticks"


def test_it_clamps_to_max_size():
    settings = make_settings(max_size=3)
    sizes, _ = run(settings, [100] * 10, size=1)

    decision = tick(settings, PolicyState(), now=0, ready=3, load=100)

    assert sizes[-1] == 3
    assert decision.desired_size == 3
    assert decision.reason.startswith("at max (3)")


# --- Staying put, scaling down --------------------------------------------------------------


def test_it_never_changes_direction_under_an_hour_of_noisy_flat_load_with_slow_ticks():
    rng = random.Random(42)
    loads = [max(0, round(14 * (1 + 0.25 * rng.gauss(0, 1)))) for _ in range(360)]
    ttfts = [SLOW_TTFT_S if rng.random() < 0.1 else FAST_TTFT_S for _ in range(360)]

    sizes, _ = run(make_settings(), loads, size=4, ttfts=ttfts)

    assert direction_changes(sizes) == 0


def test_it_scales_down_only_after_the_cooldown_and_a_full_quiet_window_by_half_at_most():
    settings = make_settings(scale_down_cooldown_s=300)
    sizes, state = run(settings, [32] * 12, size=1)
    assert sizes[-1] == 8
    last_up = state.last_scale_up_at
    drop_at = 12 * TICK_S

    sizes, state = run(settings, [2] * 120, size=8, start=drop_at, state=state)

    first_down = sizes.index(4)
    assert sizes[:first_down] == [8] * first_down
    now = drop_at + first_down * TICK_S
    assert now - last_up >= 300
    assert now - drop_at >= settings.stable_window_s
    assert sizes[-1] == 1
    assert all(b >= a / 2 for a, b in zip(sizes, sizes[1:]))


def test_it_waits_a_whole_stable_window_between_steps_down_when_no_cooldown_is_given():
    settings = make_settings()
    _, state = run(settings, [32] * 12, size=1)

    sizes, _ = run(settings, [2] * 120, size=8, start=12 * TICK_S, state=state)

    steps_down = [i for i, (a, b) in enumerate(zip(sizes, sizes[1:])) if b < a]
    assert len(steps_down) == 3
    assert all((b - a) * TICK_S >= settings.stable_window_s for a, b in zip(steps_down, steps_down[1:]))


def test_it_does_not_scale_down_while_instances_are_starting():
    settings = make_settings()
    _, state = run(settings, [20] * 30, size=5)

    for i in range(30):
        decision = tick(settings, state, now=(30 + i) * TICK_S, ready=3, starting=2, load=1)
        state = decision.state
        assert decision.desired_size == 5, decision.reason


def too_few_below(size):
    """TTFT of a model that needs `size` instances for a load its target says fewer can carry."""
    return lambda current: SLOW_TTFT_S if current < size else FAST_TTFT_S


def test_it_does_not_scale_back_down_to_the_size_that_needed_a_pressure_scale_up():
    settings = make_settings()

    sizes, state = run(settings, [9] * 120, size=3, ttfts=too_few_below(4))

    assert sizes[:6] == [3] * 6
    assert sizes[6:] == [4] * 114
    assert tick(settings, state, now=120 * TICK_S, ready=4, load=9).reason.startswith("pressure memory")


def test_it_forgets_the_pressure_after_its_memory():
    settings = make_settings(pressure_memory_s=600)

    sizes, _ = run(settings, [9] * 120, size=3, ttfts=too_few_below(4))

    assert sizes[6] == 4
    assert 3 in sizes[7:]


def test_it_keeps_min_size_without_load():
    sizes, _ = run(make_settings(min_size=2), [0] * 100, size=2)

    assert sizes == [2] * 100


def test_it_scales_to_zero_after_the_idle_period_only_when_enabled():
    enabled = make_settings(min_size=0, scale_to_zero=True, idle_period_s=600)
    sizes, state = run(enabled, [4] * 5 + [0] * 70, size=1)
    last_traffic = 4 * TICK_S
    assert sizes.index(0) * TICK_S - last_traffic == 600

    disabled = make_settings(min_size=0, scale_to_zero=False, idle_period_s=600)
    sizes, _ = run(disabled, [4] * 5 + [0] * 70, size=1)
    assert sizes[-1] == 1


def test_it_names_the_idle_period_when_scaling_to_zero():
    settings = make_settings(min_size=0, scale_to_zero=True, idle_period_s=600)
    _, state = run(settings, [0] * 60, size=1)

    decision = tick(settings, state, now=60 * TICK_S, ready=1)

    assert (decision.desired_size, decision.reason) == (0, "idle 600 s: scale to zero")


def test_it_scales_up_down_and_to_zero_with_windows_of_a_few_seconds():
    settings = make_settings(min_size=0, scale_to_zero=True, stable_window_s=4, panic_window_s=2, idle_period_s=5,
                             scale_down_cooldown_s=1)
    state = decide(settings, Signals(now=0, ready=0, starting=0, in_flight=0, waiting=0, held_requests=2),
                   PolicyState()).state

    up, state = run(settings, [20] * 5, size=1, start=1, tick_s=1, state=state)
    down, state = run(settings, [2] * 10, size=up[-1], start=6, tick_s=1, state=state)
    idle, _ = run(settings, [0] * 10, size=down[-1], start=16, tick_s=1, state=state)

    assert up[-1] == 5
    assert down[-1] == 1
    assert idle[-1] == 0


# --- State and settings ---------------------------------------------------------------------


def test_it_does_not_mutate_the_state_it_is_given():
    state = PolicyState()

    decision = tick(make_settings(), state, now=0, ready=1, load=4)

    assert state == PolicyState()
    assert decision.state.samples == ((0, 4, 0, False),)


def test_its_state_survives_a_json_column():
    settings = make_settings()
    _, state = run(settings, [9] * 25, size=3, ttfts=too_few_below(4))
    state = tick(settings, state, now=25 * TICK_S, ready=4, load=40, waiting=200).state

    assert through_json(state) == state
    assert state.booting_to is not None and state.pressure_ceiling is not None
    assert holds_only_numbers_none_and_lists(state.to_json())


def test_it_reads_missing_or_unreadable_state_as_fresh():
    assert PolicyState.from_json(None) == PolicyState()
    assert PolicyState.from_json({}) == PolicyState()
    assert PolicyState.from_json({"samples": "nope", "started_at": "yesterday", "booting_to": None}) == PolicyState()
    assert PolicyState.from_json({"samples": [[1, 2, 0, 0], [1, 2]], "last_scale_up_at": 7}) == PolicyState(
        samples=((1.0, 2.0, 0.0, False),), last_scale_up_at=7.0
    )


def test_it_decides_the_same_whether_or_not_its_state_went_through_json():
    settings = make_settings()
    rng = random.Random(7)
    loads = [4] * 20 + [40] * 40 + [max(0, round(14 + 4 * rng.gauss(0, 1))) for _ in range(200)]
    ttfts = [SLOW_TTFT_S if rng.random() < 0.3 else FAST_TTFT_S for _ in loads]

    kept, stored = PolicyState(), PolicyState()
    for i, (load, ttft) in enumerate(zip(loads, ttfts)):
        a = tick(settings, kept, now=i * TICK_S, ready=2, load=load, ttft_p95_s=ttft)
        b = tick(settings, through_json(stored), now=i * TICK_S, ready=2, load=load, ttft_p95_s=ttft)
        assert (a.desired_size, a.reason) == (b.desired_size, b.reason)
        kept, stored = a.state, b.state


def test_it_refuses_settings_it_cannot_scale_with():
    with pytest.raises(ValueError):
        make_settings(min_size=5, max_size=2)
    with pytest.raises(ValueError):
        make_settings(target_in_flight_per_instance=0)
    with pytest.raises(ValueError):
        make_settings(scale_down_cooldown_s=-1)
