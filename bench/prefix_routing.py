"""Benchmark: cache-aware routing against round-robin and least-loaded on a multi-turn chat workload.

    .venv/bin/python bench/prefix_routing.py [--users 48] [--turns 8] [--seed 1]

One run, three phases, one per routing policy (ROUTER_ROUTING), each on four fresh simulator engines
(empty caches) behind the router (uvicorn, `inventiv.asgi:application`, production settings), with the
same workload replayed: many users, each a conversation of several turns under one of a few shared
system prompts, each turn's prompt the whole conversation so far (so it grows), streamed, with a short
pause between turns.

The engines model vLLM's automatic prefix caching (worker_agent/simulator/prefix_cache.py): time to
first token = a fixed overhead + the prompt tokens not found in the engine's cache / the prefill rate
(one prefill at a time), with defaults of the order of an 8B model on one L4. Whatever cache-aware
routing wins comes from cache hits, not from tuning the engines.

Printed per policy: the engines' prefix-cache hit rate (vllm:prefix_cache_hits_total /
vllm:prefix_cache_queries_total, tokens), time to first token p50 / p95 at the client, throughput
(requests and generated tokens per second over the phase), and the route reasons. Targets: cache-aware
hit rate >= 80 %, TTFT p50 at least 40 % below least-loaded's, throughput within 5 % of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

import fleet

POLICIES = ("round-robin", "least-loaded", "cache-aware")
ENGINES = 4
TARGET_HIT_RATE = 0.80
TARGET_TTFT_CUT = 0.40
TARGET_THROUGHPUT_SHARE = 0.95
VOCABULARY = 5000
STREAM_PREFIX = b"data: "


@dataclass
class Turn:
    ttft_s: float
    latency_s: float
    completion_tokens: int
    reason: str


@dataclass
class Phase:
    policy: str
    turns: list[Turn] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    queries: float = 0.0
    hits: float = 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    def ttft_ms(self, quantile: float) -> float:
        values = sorted(turn.ttft_s for turn in self.turns)
        return values[max(0, round(quantile * len(values)) - 1)] * 1000

    @property
    def requests_per_s(self) -> float:
        return len(self.turns) / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return sum(turn.completion_tokens for turn in self.turns) / self.seconds


@dataclass(frozen=True)
class Workload:
    """Every user's messages and pauses, drawn once from the seed and replayed by every phase."""

    systems: list[str]
    users: list[tuple[int, float, list[str], list[float]]]  # (system, start delay, user messages, pauses)


def make_workload(args) -> Workload:
    rng = random.Random(args.seed)

    def text(count: int) -> str:
        return " ".join(f"w{rng.randrange(VOCABULARY)}" for _ in range(count))

    systems = [f"system prompt {index}: " + text(args.system_tokens) for index in range(args.system_prompts)]
    users = []
    for user in range(args.users):
        messages = [text(args.user_tokens) for _ in range(args.turns)]
        pauses = [rng.uniform(args.think_min_s, args.think_max_s) for _ in range(args.turns)]
        users.append((user % args.system_prompts, rng.uniform(0, args.ramp_s), messages, pauses))
    return Workload(systems=systems, users=users)


async def one_turn(session, url: str, headers: dict, messages: list[dict], max_tokens: int) -> tuple[Turn, str]:
    """A streamed chat turn: its time to first chunk, its latency, its answer."""
    started = time.perf_counter()
    ttft = None
    pieces, completion = [], 0
    body = {"model": fleet.MODEL, "messages": messages, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    async with session.post(url, json=body, headers=headers) as answer:
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {(await answer.read())[:200]!r}")
        reason = answer.headers.get("X-Inventiv-Route-Reason", "")
        buffer = b""
        async for chunk in answer.content.iter_any():
            if ttft is None:
                ttft = time.perf_counter() - started
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                if not event.startswith(STREAM_PREFIX) or event == b"data: [DONE]":
                    continue
                payload = json.loads(event[len(STREAM_PREFIX):])
                if payload.get("usage"):
                    completion = payload["usage"]["completion_tokens"]
                for choice in payload.get("choices", ()):
                    pieces.append(choice.get("delta", {}).get("content") or "")
    return Turn(ttft_s=ttft or 0.0, latency_s=time.perf_counter() - started, completion_tokens=completion,
                reason=reason), "".join(pieces)


async def replay(workload: Workload, router_url: str, key: str, args, phase: Phase) -> None:
    url = f"{router_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}

    async def user(system: int, delay: float, questions: list[str], pauses: list[float]) -> None:
        await asyncio.sleep(delay)
        messages = [{"role": "system", "content": workload.systems[system]}]
        for question, pause in zip(questions, pauses, strict=True):
            messages.append({"role": "user", "content": question})
            try:
                turn, answer = await one_turn(session, url, headers, messages, args.answer_tokens)
            except (RuntimeError, aiohttp.ClientError):
                phase.errors += 1
                return
            phase.turns.append(turn)
            messages.append({"role": "assistant", "content": answer})
            await asyncio.sleep(pause)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(user(*spec) for spec in workload.users))
        phase.seconds = time.perf_counter() - started


async def prefix_counters(ports: list[int]) -> tuple[float, float]:
    """Queries and hits (tokens) summed over the engines."""
    queries = hits = 0.0
    async with aiohttp.ClientSession() as session:
        for port in ports:
            async with session.get(f"http://{fleet.LOOPBACK}:{port}/metrics") as answer:
                for line in (await answer.text()).splitlines():
                    if line.startswith("vllm:prefix_cache_queries_total{"):
                        queries += float(line.rsplit(" ", 1)[1])
                    elif line.startswith("vllm:prefix_cache_hits_total{"):
                        hits += float(line.rsplit(" ", 1)[1])
    return queries, hits


def run_phase(policy: str, workload: Workload, key: str, args) -> Phase:
    engines = [(fleet.free_port(), fleet.engine_key()) for _ in range(ENGINES)]
    flags = ["--ttft", str(args.overhead_s), "--tokens-per-second", str(args.decode_tokens_per_second),
             "--prefill-tokens-per-second", str(args.prefill_tokens_per_second)]
    processes = [fleet.start_engine(port, engine_key, *flags) for port, engine_key in engines]
    router = None
    try:
        fleet.register_engines(engines)
        router_port = fleet.free_port()
        router = fleet.start_router(router_port, workers=args.router_workers, ROUTER_ROUTING=policy)
        for (port, _), process in zip(engines, processes, strict=True):
            fleet.wait_until_listening(port, process)
        fleet.wait_until_listening(router_port, router)
        phase = Phase(policy)
        asyncio.run(replay(workload, f"http://{fleet.LOOPBACK}:{router_port}", key, args, phase))
        phase.queries, phase.hits = asyncio.run(prefix_counters([port for port, _ in engines]))
        return phase
    finally:
        if router is not None:
            fleet.stop(router)
        for process in processes:
            fleet.kill(process)


def report(phases: dict[str, Phase], args) -> bool:
    print(f"prefix routing benchmark ({fleet.database_kind()}, {os.cpu_count()} CPUs, {ENGINES} engines, "
          f"{args.users} users x {args.turns} turns, {args.system_prompts} system prompts of {args.system_tokens} "
          f"tokens, {args.user_tokens}-token questions, {args.answer_tokens}-token answers, prefill "
          f"{args.prefill_tokens_per_second:g} tokens/s, decode {args.decode_tokens_per_second:g} tokens/s, "
          f"{args.router_workers} router process(es), seed {args.seed})")
    print(f"  {'policy':<13} {'requests':>8} {'errors':>6} {'hit rate':>8} {'TTFT p50':>9} {'TTFT p95':>9} "
          f"{'req/s':>7} {'tokens/s':>9}  route reasons")
    for phase in phases.values():
        counted = Counter(turn.reason for turn in phase.turns).most_common()
        reasons = ", ".join(f"{reason} {count}" for reason, count in counted)
        print(f"  {phase.policy:<13} {len(phase.turns):>8} {phase.errors:>6} {phase.hit_rate:>8.1%} "
              f"{phase.ttft_ms(0.5):>7.0f}ms {phase.ttft_ms(0.95):>7.0f}ms {phase.requests_per_s:>7.2f} "
              f"{phase.tokens_per_s:>9.1f}  {reasons}")
    aware, least = phases["cache-aware"], phases["least-loaded"]
    cut = 1 - aware.ttft_ms(0.5) / least.ttft_ms(0.5)
    share = aware.requests_per_s / least.requests_per_s
    checks = [
        ("cache-aware prefix hit rate", f"{aware.hit_rate:.1%} (target >= {TARGET_HIT_RATE:.0%})",
         aware.hit_rate >= TARGET_HIT_RATE),
        ("TTFT p50 cut against least-loaded", f"{cut:.0%} ({least.ttft_ms(0.5):.0f} -> {aware.ttft_ms(0.5):.0f} ms; "
         f"target >= {TARGET_TTFT_CUT:.0%})", cut >= TARGET_TTFT_CUT),
        ("throughput against least-loaded", f"{share:.1%} ({least.requests_per_s:.2f} -> "
         f"{aware.requests_per_s:.2f} req/s; target >= {TARGET_THROUGHPUT_SHARE:.0%})",
         share >= TARGET_THROUGHPUT_SHARE),
        ("no errors", f"{sum(p.errors for p in phases.values())}", all(p.errors == 0 for p in phases.values())),
    ]
    for name, value, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value}")
    return all(ok for _, _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=48)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--system-prompts", type=int, default=4)
    parser.add_argument("--system-tokens", type=int, default=800)
    parser.add_argument("--user-tokens", type=int, default=60)
    parser.add_argument("--answer-tokens", type=int, default=48)
    parser.add_argument("--think-min-s", type=float, default=0.2)
    parser.add_argument("--think-max-s", type=float, default=0.8)
    parser.add_argument("--ramp-s", type=float, default=4.0, help="users start spread over this many seconds")
    parser.add_argument("--overhead-s", type=float, default=0.02, help="the engines' fixed time to first token")
    parser.add_argument("--prefill-tokens-per-second", type=float, default=4000.0)
    parser.add_argument("--decode-tokens-per-second", type=float, default=40.0)
    parser.add_argument("--router-workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated, in the order to run")
    args = parser.parse_args()
    policies = args.policies.split(",")
    if not {"cache-aware", "least-loaded"} <= set(policies) <= set(POLICIES):
        parser.error(f"--policies must include cache-aware and least-loaded, among {', '.join(POLICIES)}")

    var_dir = tempfile.mkdtemp(prefix="inv-bench-prefix-")
    try:
        fleet.setup_environment(var_dir, database="inv_bench_prefix_routing")
        _, key = fleet.client_key()
        workload = make_workload(args)
        phases = {policy: run_phase(policy, workload, key, args) for policy in policies}
        return 0 if report(phases, args) else 1
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
