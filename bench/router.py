"""Benchmark: the router's own cost, against going direct to the engines and against the Rust vllm-router
0.1.17 on the same two engines, in the same run.

    .venv/bin/python bench/router.py [--requests 2000] [--throughput-requests 1500] [--rounds 10] [--baseline ../main]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/anything .venv/bin/python bench/router.py

One run, production-like: two simulator processes with zero delay (`--ttft 0 --tokens-per-second 0
--prefill-tokens-per-second 0`) serving with one engine key, registered as two ready instances; our
router is uvicorn serving `inventiv.asgi:application` (DEBUG off, key checks, limits, cache-aware
routing and traces on) with one process per CPU, as production runs it; the Rust router is
`vllm-router --policy round_robin` (its cheapest policy; installed with `pip install vllm-router==0.1.17`
into this environment when missing), which forwards the client's Authorization header to the engines.
An aiohttp load client; 127.0.0.1 only. With DATABASE_URL (PostgreSQL) our router works in its own
database (BENCH_DATABASE, default `inv_bench_router`); otherwise in a temporary SQLite file. With REDIS_URL,
as production runs several router processes (docker-compose.yml), they share limits and hear changes by
push, and poll the database every 5 s instead of every 0.5 s (README, The data plane).

Figures (non-streamed chat completions of 16 tokens unless said):
- added median latency at concurrency 1, ours and Rust's: direct, ours and Rust's requests take turns,
  so all see the same machine state (target for ours: <= 0.3 ms); then, for scale, a byte pipe's (bench/pipe.py:
  one proxy process relaying the bytes, no HTTP), taking turns with direct: the floor of what any proxy's
  extra hop adds here;
- throughput at concurrency 16: direct (spread over both engines), ours and Rust's, measured in
  alternating rounds, each on connections of its own (target: ours >= Rust's);
- CPU per request of each router; streaming time to the first chunk, added;
- one of the two engines SIGKILLed: requests through our router at concurrency 16 (target: 0 errors);
- every request our router answered has its trace in the database after shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

import fleet

BODY = {"model": fleet.MODEL, "messages": [{"role": "user", "content": "benchmark the router please"}],
        "max_tokens": 16}
STREAM_BODY = {**BODY, "stream": True}
WARMUP_REQUESTS = 300
TARGET_ADDED_MEDIAN_MS = 0.3
TARGET_ADDED_TTFT_MS = 1.0
RUST_ROUTER = "vllm-router"
RUST_ROUTER_PACKAGE = "vllm-router==0.1.17"
RUST_POLICY = "round_robin"
ZERO_DELAY = ("--ttft", "0", "--tokens-per-second", "0", "--prefill-tokens-per-second", "0")


def rust_router_binary() -> str:
    """The vllm-router executable of this environment, installed first if missing."""
    binary = Path(sys.executable).parent / RUST_ROUTER
    if not binary.exists():
        print(f"installing {RUST_ROUTER_PACKAGE} into {sys.prefix} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", RUST_ROUTER_PACKAGE], check=True)
    return str(binary)


def start_rust_router(port: int, engines) -> subprocess.Popen:
    return subprocess.Popen(
        [rust_router_binary(), "--host", fleet.LOOPBACK, "--port", str(port), "--policy", RUST_POLICY,
         "--log-level", "warning", "--worker-urls", *[f"http://{fleet.LOOPBACK}:{port}" for port, _ in engines]],
        cwd=fleet.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def trace_count(key_id: int) -> int:
    from router.models import RequestTrace

    return RequestTrace.objects.filter(api_key_id=key_id).count()


# --- Load ---------------------------------------------------------------------------------------


async def timed(session: aiohttp.ClientSession, url: str, headers: dict, body: dict, *, first_chunk: bool) -> float:
    """Seconds to the whole answer (or to its first chunk); raises on a non-200 answer."""
    started = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as answer:
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {(await answer.read())[:200]!r}")
        if first_chunk:
            await answer.content.readany()
            elapsed = time.perf_counter() - started
            await answer.read()
            return elapsed
        await answer.read()
        return time.perf_counter() - started


async def alternate(session, targets, n: int, body: dict, *, first_chunk: bool) -> list[list[float]]:
    """Concurrency 1, one request to each target in turn: the same conditions for all."""
    samples = [[] for _ in targets]
    for _ in range(n):
        for index, (url, headers) in enumerate(targets):
            samples[index].append(await timed(session, url, headers, body, first_chunk=first_chunk))
    return samples


async def throughput(session, targets, n: int, concurrency: int) -> tuple[float, int, float]:
    """Over `n` requests spread round-robin over `targets`: requests per second, failures, seconds."""
    next_index, errors = 0, 0

    async def worker() -> None:
        nonlocal next_index, errors
        while next_index < n:
            url, headers = targets[next_index % len(targets)]
            next_index += 1
            try:
                await timed(session, url, headers, BODY, first_chunk=False)
            except (RuntimeError, aiohttp.ClientError):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return n / seconds, errors, seconds


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def measure(args, ours_url: str, rust_url: str, pipe_url: str, client_key: str, engines, kill_second,
                  pids: dict, baseline: tuple[str, str] | None = None) -> dict:
    """`pipe_url`: the byte pipe to the first engine (concurrency 1 only); `baseline`: another checkout's router
    (its URL and client key), measured alongside ours."""
    engine_headers = {"Authorization": f"Bearer {engines[0][1]}"}
    direct = [(f"http://{fleet.LOOPBACK}:{port}/v1/chat/completions", engine_headers) for port, _ in engines]
    ours = (f"{ours_url}/v1/chat/completions", {"Authorization": f"Bearer {client_key}"})
    rust = (f"{rust_url}/v1/chat/completions", engine_headers)
    targets = {"direct": direct, "ours": [ours], "rust": [rust]}
    if baseline is not None:
        targets["baseline"] = [(f"{baseline[0]}/v1/chat/completions", {"Authorization": f"Bearer {baseline[1]}"})]
    order = list(targets)
    firsts = [each[0] for each in targets.values()]
    figures = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await throughput(session, [*direct, ours, rust], WARMUP_REQUESTS, args.concurrency)
        if baseline is not None:
            await throughput(session, targets["baseline"], WARMUP_REQUESTS // 4, args.concurrency)
        one = await alternate(session, firsts, args.requests, BODY, first_chunk=False)
        first = await alternate(session, firsts, args.requests // 2, STREAM_BODY, first_chunk=True)
        for name, samples, chunks in zip(order, one, first, strict=True):
            figures[f"{name}_median_ms"] = median_ms(samples)
            figures[f"{name}_p99_ms"] = statistics.quantiles(samples, n=100)[98] * 1000
            figures[f"{name}_ttft_ms"] = median_ms(chunks)
        # Apart, so that the routers' figures are measured as they always were: a fourth target in their turns
        # leaves each one's caches colder between its requests.
        pair = [direct[0], (f"{pipe_url}/v1/chat/completions", engine_headers)]
        alone, piped = await alternate(session, pair, args.requests, BODY, first_chunk=False)
        alone_first, piped_first = await alternate(session, pair, args.requests // 2, STREAM_BODY, first_chunk=True)
        figures["pipe_added_ms"] = median_ms(piped) - median_ms(alone)
        figures["pipe_added_ttft_ms"] = median_ms(piped_first) - median_ms(alone_first)
    # Alternating rounds, the order rotating, so that neither router always runs on a warmer machine. Each
    # round opens its own connections: uvicorn's workers share one listening socket, and the one awake when
    # the client's connections arrive takes them all, or most; one such draw for a whole run made its
    # figures swing by a fifth (how they fell, per round, is printed).
    totals = {name: [0, 0.0, 0, 0.0] for name in order}  # requests, s, errors, cpu
    served = {"ours": ours_url, **({"baseline": baseline[0]} if baseline else {})}
    figures["connections"] = {name: [] for name in served}
    rates = {name: [] for name in order}
    for round_index in range(args.rounds):
        for name in order[round_index % len(order):] + order[:round_index % len(order)]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as fresh:
                cpu = sum(fleet.cpu_seconds(pid) for pid in pids[name])
                _, errors, seconds = await throughput(fresh, targets[name], args.throughput_requests,
                                                      args.concurrency)
                cpu = sum(fleet.cpu_seconds(pid) for pid in pids[name]) - cpu
                if name in served:
                    figures["connections"][name].append(
                        fleet.connections_per_worker(pids[name][0], int(served[name].rsplit(":", 1)[1])))
            rates[name].append(args.throughput_requests / seconds)
            total = totals[name]
            total[0] += args.throughput_requests
            total[1] += seconds
            total[2] += errors
            total[3] += cpu
    for name, (requests, seconds, errors, cpu) in totals.items():
        figures[f"{name}_rps"] = requests / seconds
        figures[f"{name}_errors"] = errors
        figures[f"{name}_cpu_us"] = cpu / requests * 1e6
    # Each round's ours/Rust (the two measured in the same round): how far one round's figure can stray.
    figures["round_shares"] = sorted(mine / theirs for mine, theirs in zip(rates["ours"], rates["rust"], strict=True))
    kill_second()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        figures["dead_rps"], figures["dead_errors"], _ = await throughput(session, [ours], args.dead_requests,
                                                                          args.concurrency)
    figures["ours_total"] = (WARMUP_REQUESTS // 4 + (WARMUP_REQUESTS % 4 > 2) + args.requests + args.requests // 2
                             + args.rounds * args.throughput_requests + args.dead_requests)
    return figures


def spread(rounds: list[list[int]]) -> str:
    """How each round's connections fell on the workers: `16-0 12-4 ...`."""
    return " ".join("-".join(map(str, counts)) for counts in rounds)


def report(figures: dict, traces: int, args) -> bool:
    added = {name: figures[f"{name}_median_ms"] - figures["direct_median_ms"] for name in ("ours", "rust")}
    added_ttft = {name: figures[f"{name}_ttft_ms"] - figures["direct_ttft_ms"] for name in ("ours", "rust")}
    added["pipe"], added_ttft["pipe"] = figures["pipe_added_ms"], figures["pipe_added_ttft_ms"]
    share = figures["ours_rps"] / figures["rust_rps"]
    checks = [
        ("added median latency, concurrency 1",
         f"ours {added['ours']:+.3f} ms, Rust {added['rust']:+.3f} ms, byte pipe {added['pipe']:+.3f} ms "
         f"(direct {figures['direct_median_ms']:.3f}, "
         f"ours {figures['ours_median_ms']:.3f}, Rust {figures['rust_median_ms']:.3f}; p99 "
         f"{figures['direct_p99_ms']:.2f} / {figures['ours_p99_ms']:.2f} / {figures['rust_p99_ms']:.2f}; "
         f"target ours <= {TARGET_ADDED_MEDIAN_MS} ms)", added["ours"] <= TARGET_ADDED_MEDIAN_MS),
        (f"throughput, concurrency {args.concurrency}",
         f"ours {figures['ours_rps']:.0f} req/s, Rust {figures['rust_rps']:.0f} req/s = {share:.0%} of Rust's "
         f"(direct {figures['direct_rps']:.0f}; one round's share {figures['round_shares'][0]:.0%} to "
         f"{figures['round_shares'][-1]:.0%}, median {statistics.median(figures['round_shares']):.0%}; our workers' "
         f"connections, per round {spread(figures['connections']['ours'])}; "
         f"target >= 100 %)",
         share >= 1.0 and figures["ours_errors"] == 0),
        ("CPU per request", f"ours {figures['ours_cpu_us']:.0f} us, Rust {figures['rust_cpu_us']:.0f} us, engines "
         f"{figures['direct_cpu_us']:.0f} us (each process tree's whole cost)", True),
        ("streaming time to first chunk, added",
         f"ours {added_ttft['ours']:+.3f} ms, Rust {added_ttft['rust']:+.3f} ms, byte pipe {added_ttft['pipe']:+.3f} ms "
         f"(direct {figures['direct_ttft_ms']:.3f})", added_ttft["ours"] < TARGET_ADDED_TTFT_MS),
        ("one of two engines dead", f"{figures['dead_errors']} errors, {figures['dead_rps']:.0f} req/s through ours",
         figures["dead_errors"] == 0),
        ("traces written", f"{traces} of {figures['ours_total']} requests our router answered",
         traces == figures["ours_total"]),
    ]
    print(f"router benchmark ({fleet.database_kind()}, Redis {'on' if os.environ.get('REDIS_URL') else 'off'}, "
          f"{os.cpu_count()} CPUs, simulator with zero delay, "
          f"{args.router_workers} router processes of ours, Rust vllm-router 0.1.17 --policy {RUST_POLICY}, "
          f"{args.rounds} rounds of {args.throughput_requests} requests at concurrency {args.concurrency})")
    for name, value, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {name}: {value}")
    if "baseline_rps" in figures:
        added_baseline = figures["baseline_median_ms"] - figures["direct_median_ms"]
        print(f"  baseline ({args.baseline}): added median latency, concurrency 1 {added_baseline:+.3f} ms; "
              f"throughput, concurrency {args.concurrency} {figures['baseline_rps']:.0f} req/s = "
              f"{figures['baseline_rps'] / figures['rust_rps']:.0%} of Rust's; CPU per request "
              f"{figures['baseline_cpu_us']:.0f} us; streaming time to first chunk, added "
              f"{figures['baseline_ttft_ms'] - figures['direct_ttft_ms']:+.3f} ms; its workers' connections "
              f"{spread(figures['connections']['baseline'])}")
    return all(ok for _, _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="concurrency-1 requests per target")
    # Many short rounds rather than a few long ones: the machine's own slow and quick spells (a shared host's)
    # then fall on every target alike.
    parser.add_argument("--throughput-requests", type=int, default=1500, help="per target and round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dead-requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--app", default=fleet.ROUTER_APP, help="the ASGI app uvicorn serves")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout of Inventiv (e.g. the main branch's) whose router is measured in the "
                             "same run, on the same engines and database, for a before/after comparison")
    # Production runs one web/router process per core (README, docker-compose WEB_WORKERS); the direct
    # side is two engine processes, so a one-process router would be measured on one core against two.
    parser.add_argument("--router-workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn worker processes serving our router")
    args = parser.parse_args()

    var_dir = tempfile.mkdtemp(prefix="inv-bench-router-")
    processes: list[subprocess.Popen] = []
    try:
        fleet.setup_environment(var_dir, database="inv_bench_router")
        key = fleet.engine_key()  # one key for both engines: the Rust router passes the client's on
        engines = [(fleet.free_port(), key) for _ in range(2)]
        processes += [fleet.start_engine(port, key, *ZERO_DELAY) for port, _ in engines]
        fleet.register_engines(engines)
        key_id, client_key = fleet.client_key()
        ours_port, rust_port, pipe_port = fleet.free_port(), fleet.free_port(), fleet.free_port()
        ours = fleet.start_router(ours_port, workers=args.router_workers, app=args.app)
        rust = start_rust_router(rust_port, engines)
        pipe = fleet.start_pipe(pipe_port, engines[0][0])
        processes += [ours, rust, pipe]
        listening = [*zip((p for p, _ in engines), processes[:2]), (ours_port, ours), (rust_port, rust),
                     (pipe_port, pipe)]
        baseline = None
        if args.baseline is not None:
            baseline_port = fleet.free_port()
            _, baseline_key = fleet.client_key("bench-baseline")
            # Its own express lane when that checkout has one (a checkout from before it serves by ASGI).
            http = fleet.ROUTER_HTTP if "HttpProtocol" in (args.baseline / "inventiv" / "asgi.py").read_text() else None
            baseline_router = fleet.start_router(baseline_port, workers=args.router_workers, http=http,
                                                 cwd=args.baseline.resolve())
            processes.append(baseline_router)
            listening.append((baseline_port, baseline_router))
            baseline = (f"http://{fleet.LOOPBACK}:{baseline_port}", baseline_key)
        for port, process in listening:
            fleet.wait_until_listening(port, process)

        def kill_second() -> None:
            fleet.kill(processes[1])

        pids = {"direct": [processes[0].pid, processes[1].pid], "ours": [ours.pid], "rust": [rust.pid]}
        if baseline is not None:
            pids["baseline"] = [processes[-1].pid]
        figures = asyncio.run(measure(args, f"http://{fleet.LOOPBACK}:{ours_port}",
                                      f"http://{fleet.LOOPBACK}:{rust_port}", f"http://{fleet.LOOPBACK}:{pipe_port}",
                                      client_key, engines, kill_second, pids, baseline))
        fleet.stop(ours)  # a clean shutdown flushes the last traces
        if baseline is not None:
            fleet.stop(processes[-1])  # SIGKILL would leave its uvicorn workers behind
        return 0 if report(figures, trace_count(key_id), args) else 1
    finally:
        for process in processes:
            fleet.kill(process)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
