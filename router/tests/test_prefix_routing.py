"""Cache-aware routing: prompts cut into blocks, what was routed where, and the balancer's choice."""

import pytest
import requests

from router.balancer import (
    AFFINITY,
    LEAST_LOADED,
    PREFIX,
    PREFIX_HASH,
    PREFIX_OVERLOADED,
    ROUND_ROBIN,
    Balancer,
)
from router.breaker import CircuitBreakers
from router.calls import parse_call
from router.models import RequestTrace
from router.prefixes import CHARS_PER_BLOCK, NO_PREFIX, PrefixIndex, block_names, chat_prefix, text_prefix
from router.tests.factories import MODEL, client_key, router_config, wait_for
from router.tests.test_balancing import candidate

SYSTEM = "You are the support assistant of a company that rents GPU machines. " * 4  # about four blocks


def conversation(user: str, turns: int) -> list[dict]:
    """A chat of `turns` user messages (and the answers between them) after the shared system prompt."""
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(turns):
        messages.append({"role": "user", "content": f"{user} asks question {turn}: " + "details " * 20})
        if turn < turns - 1:
            messages.append({"role": "assistant", "content": f"answer {turn} " * 15})
    return messages


def cache_aware(**options) -> Balancer:
    return Balancer(CircuitBreakers(), **options)


POOL = [candidate(name) for name in "abcd"]


def test_a_block_name_stands_for_the_whole_prefix_up_to_its_block():
    text = "x" * (3 * CHARS_PER_BLOCK + 10)
    names = block_names(text)
    assert len(names) == 3  # the last 10 characters are no full block
    assert block_names(text[:2 * CHARS_PER_BLOCK]) == names[:2]
    changed = block_names("y" + text[1:])
    assert all(a != b for a, b in zip(names, changed, strict=True))


def test_every_turn_of_a_conversation_extends_the_previous_turns_blocks_and_shares_its_anchor():
    first, third = chat_prefix(conversation("alice", 1)), chat_prefix(conversation("alice", 3))
    assert third.names[:len(first.names) - 1] == first.names[:-1]
    assert first.anchor == third.anchor is not None
    other = chat_prefix(conversation("bob", 3))
    assert other.anchor != first.anchor
    assert other.names[:3] == first.names[:3]  # the shared system prompt


def test_short_prompts_and_embeddings_have_no_prefix_to_route_on():
    assert chat_prefix([{"role": "user", "content": "hi"}]) == NO_PREFIX
    assert text_prefix("short") == NO_PREFIX
    assert text_prefix(["p" * 200, "q" * 200]).names == block_names("p" * 200)
    assert text_prefix("p" * 200).anchor is None
    embeddings = parse_call("/v1/embeddings", b'{"model": "m", "input": "' + b"e" * 300 + b'"}', None,
                            with_prefix=True)
    assert embeddings.prefix == NO_PREFIX


def test_the_index_finds_the_instances_holding_the_longest_routed_prefix():
    index = PrefixIndex()
    alice = chat_prefix(conversation("alice", 2)).names
    bob = chat_prefix(conversation("bob", 2)).names
    index.record("a", alice)
    index.record("b", bob)
    assert index.longest(alice, {"a", "b", "c"}) == ({"a"}, len(alice))
    holders, depth = index.longest(chat_prefix(conversation("carol", 1)).names, {"a", "b", "c"})
    assert holders == {"a", "b"} and 0 < depth < len(alice)  # only the system prompt is known
    assert index.longest(alice, {"c"}) == (set(), 0)


def test_the_index_is_bounded_per_instance_and_forgets_instances_that_left():
    index = PrefixIndex(blocks_per_instance=10)
    for user in range(50):
        index.record("a", chat_prefix(conversation(f"user{user}", 3)).names)
    assert index.size("a") == 10
    latest = chat_prefix(conversation("user49", 3)).names
    assert index.longest(latest, {"a"})[1] == 0  # its early blocks were evicted before its last ones
    index.record("b", latest)
    index.retain({"a"})
    assert index.size("b") == 0 and index.longest(latest, {"b"}) == (set(), 0)


def test_a_conversations_next_turn_goes_where_its_earlier_turns_went_even_when_busier():
    chooser = cache_aware()
    home, reason = chooser.pick(POOL, prefix=chat_prefix(conversation("alice", 1)))
    assert reason == PREFIX_HASH
    chooser.started(home.instance_id)  # alice's first turn still runs there
    for user in ("bob", "carol", "dave"):
        chooser.pick(POOL, prefix=chat_prefix(conversation(user, 1)))
    # The second turn: its opening hashes to the same instance; the third: the routed prefix says it.
    assert chooser.pick(POOL, prefix=chat_prefix(conversation("alice", 2))) == (home, PREFIX_HASH)
    assert chooser.pick(POOL, prefix=chat_prefix(conversation("alice", 3))) == (home, PREFIX)


def test_router_replicas_agree_on_a_new_conversations_instance_without_sharing_state():
    prefixes = [chat_prefix(conversation(f"user{n}", 1)) for n in range(40)]
    first, second = cache_aware(), cache_aware()
    homes = [first.pick(POOL, prefix=prefix)[0].instance_id for prefix in prefixes]
    assert [second.pick(POOL, prefix=prefix)[0].instance_id for prefix in prefixes] == homes
    assert len(set(homes)) == 4  # conversations spread over every instance


def test_an_overloaded_preferred_instance_sends_the_turn_to_the_least_loaded_one_and_says_so():
    chooser = cache_aware(load_factor=1.5, load_slack=2)
    prefix = chat_prefix(conversation("alice", 2))
    home, _ = chooser.pick(POOL, prefix=prefix)
    for _ in range(6):
        chooser.started(home.instance_id)
    picked, reason = chooser.pick(POOL, prefix=prefix)
    assert reason == PREFIX_OVERLOADED and picked.instance_id != home.instance_id
    # The turn it served there is remembered: with the first instance still overloaded, that one holds
    # the conversation's longest prefix now.
    assert chooser.pick(POOL, prefix=chat_prefix(conversation("alice", 3)))[0].instance_id == picked.instance_id


def test_an_engine_queue_counts_toward_overload():
    chooser = cache_aware()
    prefix = chat_prefix(conversation("alice", 1))
    home, _ = chooser.pick(POOL, prefix=prefix)
    crowded = [candidate(c.instance_id, waiting=20 if c.instance_id == home.instance_id else 0) for c in POOL]
    assert chooser.pick(crowded, prefix=prefix)[1] == PREFIX_OVERLOADED


def test_a_session_id_still_wins_over_the_prefix():
    chooser = cache_aware()
    prefix = chat_prefix(conversation("alice", 1))
    session_home = chooser.pick(POOL, session_id="s-1")[0]
    assert chooser.pick(POOL, session_id="s-1", prefix=prefix) == (session_home, AFFINITY)


@pytest.mark.parametrize("policy, reasons", [("least-loaded", {LEAST_LOADED}), ("round-robin", {ROUND_ROBIN})])
def test_the_other_policies_ignore_prefixes(policy, reasons):
    chooser = cache_aware(policy=policy)
    prefix = chat_prefix(conversation("alice", 2))
    picks = [chooser.pick(POOL, prefix=prefix) for _ in range(8)]
    assert {reason for _, reason in picks} == reasons
    assert len({picked.instance_id for picked, _ in picks}) == 4


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="routing policy"):
        cache_aware(policy="random")


# --- Through the router, against simulators that model vLLM's prefix cache -----------------------------


def engine_counters(engine) -> tuple[float, float]:
    from worker_agent.metrics import parse_prometheus_text

    text = requests.get(f"{engine.url}/metrics", timeout=5).text
    samples = {s.name: s.value for s in parse_prometheus_text(text)}
    return samples["vllm:prefix_cache_queries_total"], samples["vllm:prefix_cache_hits_total"]


@pytest.mark.django_db(transaction=True)
def test_a_conversation_stays_where_its_prefix_is_cached_and_its_traces_say_why(engines, start_router):
    pool = {engine.id: engine for engine in (engines(), engines(), engines())}
    key = client_key()
    router = start_router()
    served, reasons = [], []
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(4):
        messages.append({"role": "user", "content": f"question {turn} " + "about the invoice " * 10})
        answer = requests.post(f"{router.url}/v1/chat/completions", timeout=10,
                               headers={"Authorization": f"Bearer {key}"},
                               json={"model": MODEL, "messages": messages, "max_tokens": 8})
        assert answer.status_code == 200
        served.append(answer.headers["x-inventiv-instance"])
        reasons.append(answer.headers["x-inventiv-route-reason"])
        messages.append(answer.json()["choices"][0]["message"])
    assert len(set(served)) == 1
    assert reasons == [PREFIX_HASH, PREFIX_HASH, PREFIX, PREFIX]
    queries, hits = engine_counters(pool[served[0]])
    assert hits > queries / 2  # every later turn found the earlier turns cached
    traces = wait_for(lambda: list(RequestTrace.objects.order_by("created_at").values_list("route_reason", flat=True))
                      if RequestTrace.objects.count() == 4 else None, what="the four traces")
    assert traces == reasons


@pytest.mark.django_db(transaction=True)
def test_a_router_configured_for_least_loaded_spreads_a_conversation(engines, start_router):
    engines(), engines()
    key = client_key()
    router = start_router(router_config(routing="least-loaded"))
    messages = conversation("alice", 1)
    served = set()
    for _ in range(4):
        answer = requests.post(f"{router.url}/v1/chat/completions", timeout=10,
                               headers={"Authorization": f"Bearer {key}"},
                               json={"model": MODEL, "messages": messages, "max_tokens": 2})
        served.add(answer.headers["x-inventiv-instance"])
        assert answer.headers["x-inventiv-route-reason"] == LEAST_LOADED
    assert len(served) == 2
