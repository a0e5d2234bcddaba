import random

import pytest

from autoscaling.policy import Decision, PolicySettings, PolicyState, Signals, decide

TICK_S = 10.0
TARGET = 4


def make_settings(**overrides) -> PolicySettings:
    values = dict(min_size=1, max_size=32, target_in_flight_per_instance=TARGET, ttft_p95_objective_s=2.0)
    values.update(overrides)
    return PolicySettings(**values)


def tick(settings, state, *, now, ready, load=0, starting=0, **signals) -> Decision:
    return decide(settings, Signals(now=now, ready=ready, starting=starting, in_flight=load, waiting=0, **signals), state)


def run(settings, loads, *, size, start=0.0, state=None):
    """Tick through `loads` every 10 s, applying each decision at once; return sizes and final state."""
    state = state or PolicyState()
    sizes = []
    for i, load in enumerate(loads):
        decision = tick(settings, state, now=start + i * TICK_S, ready=size, load=load)
        size, state = decision.desired_size, decision.state
        sizes.append(size)
    return sizes, state


def direction_changes(sizes) -> int:
    steps = [b - a for a, b in zip(sizes, sizes[1:]) if b != a]
    return sum(1 for a, b in zip(steps, steps[1:]) if (a > 0) != (b > 0))


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


def test_it_counts_starting_instances_and_does_not_scale_up_again_while_they_boot():
    settings = make_settings()
    _, state = run(settings, [20] * 19, size=5)

    for i in range(30):
        decision = tick(settings, state, now=(19 + i) * TICK_S, ready=2, starting=3, load=20, ttft_p95_s=9.0)
        state = decision.state
        assert decision.desired_size == 5, decision.reason


def test_it_never_changes_direction_under_an_hour_of_noisy_flat_load():
    rng = random.Random(42)
    loads = [max(0, round(14 * (1 + 0.25 * rng.gauss(0, 1)))) for _ in range(360)]

    sizes, _ = run(make_settings(), loads, size=4)

    assert direction_changes(sizes) == 0


def test_it_scales_down_only_after_the_cooldown_and_a_full_quiet_window_by_half_at_most():
    settings = make_settings()
    sizes, state = run(settings, [32] * 12, size=1)
    assert sizes[-1] == 8
    last_up = state.last_scale_up_at
    drop_at = 12 * TICK_S

    sizes, state = run(settings, [2] * 120, size=8, start=drop_at, state=state)

    first_down = sizes.index(4)
    assert sizes[:first_down] == [8] * first_down
    now = drop_at + first_down * TICK_S
    assert now - last_up >= settings.scale_down_cooldown_s
    assert now - drop_at >= settings.stable_window_s
    assert sizes[-1] == 1
    assert all(b >= a / 2 for a, b in zip(sizes, sizes[1:]))


def test_it_clamps_to_max_size():
    settings = make_settings(max_size=3)
    sizes, _ = run(settings, [100] * 10, size=1)

    decision = tick(settings, PolicyState(), now=0, ready=3, load=100)

    assert sizes[-1] == 3
    assert decision.desired_size == 3
    assert decision.reason.startswith("at max (3)")


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


def test_it_adds_one_instance_when_ttft_is_above_the_objective():
    settings = make_settings()
    _, state = run(settings, [8] * 19, size=2)

    decision = tick(settings, state, now=19 * TICK_S, ready=2, load=8, ttft_p95_s=3.5)

    assert decision.desired_size == 3
    assert decision.reason == "ttft: p95 3.5 s above 2.0 s objective"


def test_it_adds_one_instance_when_the_kv_cache_is_nearly_full():
    settings = make_settings()
    _, state = run(settings, [8] * 19, size=2)

    decision = tick(settings, state, now=19 * TICK_S, ready=2, load=8, kv_cache_usage=0.97)

    assert decision.desired_size == 3


def test_it_does_not_mutate_the_state_it_is_given():
    state = PolicyState()

    decision = tick(make_settings(), state, now=0, ready=1, load=4)

    assert state == PolicyState()
    assert decision.state.samples == ((0, 4),)


def test_it_refuses_settings_it_cannot_scale_with():
    with pytest.raises(ValueError):
        make_settings(min_size=5, max_size=2)
    with pytest.raises(ValueError):
        make_settings(target_in_flight_per_instance=0)
