"""Choosing an instance, circuit breakers and per-key limits: pure logic with a fake clock."""

from router.balancer import AFFINITY, LEAST_LOADED, RETRY, Balancer
from router.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreakers
from router.keys import KeyEntry
from router.limits import RateLimiter
from router.table import Candidate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def candidate(name: str, *, waiting: int = 0) -> Candidate:
    return Candidate(instance_id=name, base_url=f"http://{name}", authorization="", waiting=waiting)


def balancer(clock=None, **breaker_options) -> Balancer:
    return Balancer(CircuitBreakers(clock=clock or Clock(), **breaker_options))


def key(*, rpm=None, tpm=None) -> KeyEntry:
    return KeyEntry(id=1, name="k", requests_per_minute=rpm, tokens_per_minute=tpm, allowed_models=None)


def test_equally_loaded_instances_take_turns():
    chooser, pool = balancer(), [candidate("a"), candidate("b"), candidate("c")]
    picks = [chooser.pick(pool) for _ in range(6)]
    assert [name.instance_id for name, _ in picks] == ["a", "b", "c", "a", "b", "c"]
    assert {reason for _, reason in picks} == {LEAST_LOADED}


def test_the_instance_with_fewest_outstanding_requests_wins():
    chooser = balancer()
    pool = [candidate("busy", waiting=3), candidate("idle")]
    chooser.started("idle")
    chooser.started("idle")
    assert chooser.pick(pool)[0].instance_id == "idle"  # 2 of ours < 3 waiting in the engine
    chooser.started("idle")
    chooser.started("idle")
    assert chooser.pick(pool)[0].instance_id == "busy"
    for _ in range(4):
        chooser.finished("idle")
    assert chooser.in_flight == {}


def test_a_retry_skips_instances_that_already_failed():
    chooser, pool = balancer(), [candidate("a"), candidate("b")]
    picked, reason = chooser.pick(pool, exclude=["a"])
    assert (picked.instance_id, reason) == ("b", RETRY)
    assert chooser.pick(pool, exclude=["a", "b"]) is None


def test_a_session_sticks_to_one_instance_and_moves_only_when_it_leaves():
    chooser = balancer()
    pool = [candidate(name) for name in "abcd"]
    homes = {session: chooser.pick(pool, session_id=session)[0].instance_id for session in map(str, range(40))}
    assert all(chooser.pick(pool, session_id=s) == (candidate(home), AFFINITY) for s, home in homes.items())
    assert len(set(homes.values())) == 4
    without_a = [c for c in pool if c.instance_id != "a"]
    moved = {s for s, home in homes.items() if chooser.pick(without_a, session_id=s)[0].instance_id != home}
    assert moved == {s for s, home in homes.items() if home == "a"}


def test_the_breaker_opens_after_consecutive_failures_then_lets_one_probe_through():
    clock = Clock()
    breakers = CircuitBreakers(threshold=3, cooldown_s=5, clock=clock)
    for _ in range(2):
        breakers.record_failure("a")
    assert breakers.available("a") and breakers.state("a") == CLOSED
    breakers.record_failure("a")
    assert not breakers.available("a") and breakers.state("a") == OPEN
    assert breakers.retry_after_s(["a"]) == 5

    clock.now += 5
    assert breakers.state("a") == HALF_OPEN and breakers.available("a")
    breakers.on_selected("a")
    assert not breakers.available("a")  # one probe at a time
    breakers.record_failure("a")
    assert breakers.state("a") == OPEN

    clock.now += 5
    breakers.on_selected("a")
    breakers.record_success("a")
    assert breakers.state("a") == CLOSED and breakers.available("a")


def test_a_success_resets_the_failure_count():
    breakers = CircuitBreakers(threshold=2, clock=Clock())
    breakers.record_failure("a")
    breakers.record_success("a")
    breakers.record_failure("a")
    assert breakers.state("a") == CLOSED


def test_an_open_breaker_keeps_its_instance_out_of_the_choice():
    chooser = balancer(threshold=1)
    chooser.breakers.record_failure("a")
    pool = [candidate("a"), candidate("b")]
    assert {chooser.pick(pool)[0].instance_id for _ in range(4)} == {"b"}
    assert chooser.pick(pool, session_id="s")[0].instance_id == "b"
    assert chooser.pick([candidate("a")]) is None


def test_requests_per_minute_slide_with_time():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limited = key(rpm=2)
    assert limiter.admit(limited) is None
    clock.now += 30
    assert limiter.admit(limited) is None
    assert limiter.admit(limited) == ("requests per minute", 30)
    clock.now += 30.5
    assert limiter.admit(limited) is None  # the first request left the window


def test_tokens_per_minute_count_what_answers_used():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limited = key(tpm=100)
    assert limiter.admit(limited) is None
    limiter.add_tokens(limited, 60)
    clock.now += 10
    limiter.add_tokens(limited, 50)
    which, wait = limiter.admit(limited)
    assert which == "tokens per minute" and 50 <= wait <= 51  # until the first 60 tokens leave
    clock.now += wait
    assert limiter.admit(limited) is None


def test_a_key_without_limits_is_never_counted():
    limiter = RateLimiter(clock=Clock())
    unlimited = key()
    assert all(limiter.admit(unlimited) is None for _ in range(1000))
    limiter.add_tokens(unlimited, 10**6)
    assert limiter.admit(unlimited) is None
