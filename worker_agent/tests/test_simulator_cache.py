"""The simulator's model of vLLM's automatic prefix caching, and the refusals around it."""

import json

import pytest

from worker_agent.metrics import parse_prometheus_text
from worker_agent.simulator import SimConfig, start_simulator
from worker_agent.simulator.engine import SimEngine
from worker_agent.simulator.prefix_cache import PrefixCache, block_hashes
from worker_agent.tests.test_simulator import AUTH, KEY, call

SYSTEM = " ".join(f"rule{i}" for i in range(64))  # 64 words: four blocks of 16


def words(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def test_a_block_is_named_by_its_tokens_and_everything_before_them():
    first = block_hashes(words("a", 40), 16)
    assert len(first) == 2  # the last 8 tokens do not fill a block
    changed_early = block_hashes(["x", *words("a", 40)[1:]], 16)
    assert changed_early[1] != first[1]  # same second block, other prefix: another name
    assert block_hashes(words("a", 32), 16) == first


def test_a_repeated_prompt_hits_its_full_blocks_but_recomputes_the_last_token():
    cache = PrefixCache(block_size=16, capacity_blocks=100)
    assert cache.admit(words("a", 40)) == (0, 1)  # cold; holds its partial third block
    assert cache.admit(words("a", 40))[0] == 32
    whole = words("b", 48)
    cache.admit(whole)
    assert cache.admit(whole)[0] == 32  # three full blocks, but the last token is always computed
    assert (cache.queries, cache.hits) == (40 + 40 + 48 + 48, 32 + 32)


def test_a_shared_prefix_hits_up_to_the_first_block_that_differs():
    cache = PrefixCache(block_size=16, capacity_blocks=100)
    cache.admit([*words("sys", 32), *words("alice", 20)])
    assert cache.admit([*words("sys", 32), *words("bob", 20)])[0] == 32
    assert cache.admit([*words("other", 32), *words("bob", 20)])[0] == 0


def test_the_cache_is_bounded_and_evicts_the_least_recently_used_blocks():
    cache = PrefixCache(block_size=16, capacity_blocks=8)
    kept = words("keep", 64)  # four blocks
    cache.admit(kept)
    cache.admit(words("x", 32))
    cache.admit(kept)  # used again: the most recent now
    cache.admit(words("y", 48))  # needs room: the x blocks go first
    assert len(cache) <= 8
    assert cache.admit(kept)[0] == 48
    assert cache.admit(words("x", 33))[0] == 0
    for index in range(100):
        cache.admit(words(f"flood{index}-", 64))
    assert len(cache) <= 8


def test_blocks_that_running_requests_hold_leave_less_room_to_cache():
    cache = PrefixCache(block_size=16, capacity_blocks=10)
    _, held = cache.admit(words("long", 64), output_tokens=64)  # 4 prompt blocks cached, 4 output blocks held
    assert held == 4 and len(cache) <= 6
    cache.admit(words("other", 64))
    assert len(cache) <= 10 - held
    cache.release(held)
    cache.admit(words("again", 64))
    assert len(cache) <= 10


def test_prefill_takes_the_uncached_tokens_at_the_prefill_rate_one_request_after_another():
    engine = SimEngine(SimConfig(prefill_tokens_per_second=1000, block_size=16, kv_cache_blocks=100))
    prompt = words("p", 400)
    cold, _ = engine.prefill_seconds([prompt], len(prompt), [1], now=10.0)
    assert cold == pytest.approx(0.4)
    # The same prompt arriving at once waits for the first prefill, then computes only its last block.
    warm, _ = engine.prefill_seconds([prompt], len(prompt), [1], now=10.0)
    assert warm == pytest.approx(0.4 + 0.016)
    later, _ = engine.prefill_seconds([prompt], len(prompt), [1], now=20.0)
    assert later == pytest.approx(0.016)


def test_without_prefix_caching_every_prompt_is_computed_whole():
    engine = SimEngine(SimConfig(prefill_tokens_per_second=1000, enable_prefix_caching=False))
    prompt = words("p", 200)
    engine.prefill_seconds([prompt], len(prompt), [1], now=0.0)
    assert engine.prefill_seconds([prompt], len(prompt), [1], now=100.0)[0] == pytest.approx(0.2)
    assert engine.cache.queries == 0


@pytest.fixture
def sim():
    with start_simulator(SimConfig(model="mock-echo", api_key=KEY, max_model_len=200,
                                   prefill_tokens_per_second=0)) as server:
        yield server


def prefix_counters(server) -> tuple[float, float]:
    samples = {s.name: s.value for s in parse_prometheus_text(call(server, "/metrics")[1].decode())}
    return samples["vllm:prefix_cache_queries_total"], samples["vllm:prefix_cache_hits_total"]


def test_its_metrics_count_prefix_cache_queries_and_hits_in_tokens_across_a_conversation(sim):
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "tell me about blocks"}]
    assert call(sim, "/v1/chat/completions", {"model": "mock-echo", "messages": first, "max_tokens": 4})[0] == 200
    assert prefix_counters(sim) == (68, 0)
    second = [*first, {"role": "assistant", "content": "blocks blocks"},
              {"role": "user", "content": "and then"}]
    assert call(sim, "/v1/chat/completions",
                {"model": "mock-echo", "messages": second, "max_tokens": 4, "stream": True})[0] == 200
    assert prefix_counters(sim) == (68 + 72, 64)  # the system prompt's four blocks; the rest is new


def test_it_refuses_a_prompt_longer_than_its_context_as_vllm_does(sim):
    messages = [{"role": "user", "content": " ".join(words("w", 190))}]
    status, body = call(sim, "/v1/chat/completions", {"model": "mock-echo", "messages": messages, "max_tokens": 20})
    assert status == 400
    assert json.loads(body) == {"error": {
        "message": "You passed 190 input tokens and requested 20 output tokens. However, the model's context "
                   "length is only 200 tokens, resulting in a maximum input length of 180 tokens. Please reduce "
                   "the length of the input prompt. (parameter=input_tokens, value=190)",
        "type": "BadRequestError", "param": "input_tokens", "code": 400}}
    assert call(sim, "/v1/chat/completions", {"model": "mock-echo", "messages": messages, "max_tokens": 10})[0] == 200
    too_long = " ".join(words("w", 201))
    assert call(sim, "/v1/completions", {"model": "mock-echo", "prompt": too_long})[0] == 400
    assert call(sim, "/v1/embeddings", {"model": "mock-echo", "input": too_long})[0] == 400
    assert prefix_counters(sim) == (190, 0)  # refused prompts are never looked up


def test_its_cli_takes_the_cache_flags_and_refuses_a_zero_block_size():
    from worker_agent.simulator.__main__ import main, parse_args

    config = parse_args(["--model", "m", "--block-size", "32", "--num-gpu-blocks-override", "500",
                         "--prefill-tokens-per-second", "2500", "--no-enable-prefix-caching"])
    assert (config.block_size, config.kv_cache_blocks, config.prefill_tokens_per_second) == (32, 500, 2500)
    assert config.enable_prefix_caching is False
    assert main(["--model", "m", "--block-size", "0"]) == 2


def test_its_runtime_config_changes_the_prefill_rate(sim):
    status, body = call(sim, "/sim/config", {"prefill_tokens_per_second": 1500}, headers=AUTH)
    assert status == 200 and json.loads(body)["prefill_tokens_per_second"] == 1500


def test_a_chats_next_turn_finds_the_previous_answer_cached_too(sim):
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": " ".join(words("q", 28))}]
    answer = json.loads(call(sim, "/v1/chat/completions",
                             {"model": "mock-echo", "messages": first, "max_tokens": 36})[1])
    queries, hits = prefix_counters(sim)
    assert (queries, hits) == (92, 0)
    second = [*first, answer["choices"][0]["message"], {"role": "user", "content": "more"}]
    call(sim, "/v1/chat/completions", {"model": "mock-echo", "messages": second, "max_tokens": 2})
    # Prompt and answer filled 8 blocks (128 tokens); the new turn recomputes only its last token.
    assert prefix_counters(sim) == (92 + 129, 128)
