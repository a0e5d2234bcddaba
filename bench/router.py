"""Benchmark: the router's overhead against the simulator with zero delay, direct vs through the router.

    .venv/bin/python bench/router.py [--requests 2000] [--throughput-requests 8000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/anything .venv/bin/python bench/router.py

One run, production-like: two simulator processes (`--ttft 0 --tokens-per-second 0`), each registered
as a ready instance with its own engine key; uvicorn serving `inventiv.asgi:application` (DEBUG off, key
checks, limits and usage recording on) as a subprocess; an aiohttp load client; 127.0.0.1 only. With
DATABASE_URL (PostgreSQL) it works in its own database (BENCH_DATABASE, default `inv_bench_router`);
otherwise in a temporary SQLite file.

Figures (non-streamed chat completions of 16 tokens unless said):
- added median latency at concurrency 1: router and direct requests alternate, so both see the same
  machine state (target < 1 ms);
- throughput at concurrency 16, direct (client spreads over both engines) vs router (target >= 35 %);
- streaming: time to the first chunk, added (target < 1 ms);
- one of the two engines SIGKILLed: requests through the router at concurrency 16 (target: 0 errors);
- every routed request has its trace in the database after shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MODEL = "mock-echo"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "benchmark the router please"}], "max_tokens": 16}
STREAM_BODY = {**BODY, "stream": True}
START_TIMEOUT_S = 30
POLL_S = 0.05
WARMUP_REQUESTS = 300
TARGET_ADDED_MEDIAN_MS = 1.0
TARGET_THROUGHPUT_SHARE = 0.35
TARGET_ADDED_TTFT_MS = 1.0
# The usage writer flushes every second; its shutdown flush writes the rest.
STOP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"a server exited at start with code {process.returncode}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            time.sleep(POLL_S)
    sys.exit(f"nothing listens on port {port}")


def setup_environment(var_dir: str) -> None:
    os.environ["INVENTIV_VAR_DIR"] = var_dir  # the router subprocess reads the same SECRET_KEY from there
    os.environ["DEBUG"] = "0"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "inventiv.settings"
    if os.environ.get("DATABASE_URL"):
        sys.path.insert(0, str(ROOT / "bench"))
        from health_sweep import bench_database_url

        os.environ.setdefault("BENCH_DATABASE", "inv_bench_router")
        os.environ["DATABASE_URL"] = bench_database_url()
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir}/bench.sqlite3"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("loaddata", "catalog", verbosity=0)


def register_engines(ports_and_keys) -> tuple[int, str]:
    """Ready instances for the engines (an earlier run's are retired) and a fresh API key: id, clear key."""
    from django.utils import timezone

    from catalog.models import InstanceType, LlmModel, Provider, Zone
    from instances.credentials import MintedCredentials
    from instances.models import Instance
    from instances.status import Status
    from router.services import create_api_key

    Instance.objects.filter(status=Status.READY).update(status=Status.TERMINATED)
    for port, key in ports_and_keys:
        Instance.objects.create(
            provider=Provider.objects.get(code="mock"), zone=Zone.objects.get(code="mock-eu-1"),
            instance_type=InstanceType.objects.get(code="MOCK-GPU-S"), model=LlmModel.objects.get(code=MODEL),
            status=Status.READY, ready_at=timezone.now(), public_ip=LOOPBACK, engine_port=port,
            engine_api_key_encrypted=MintedCredentials("unused", key).encrypted_engine_api_key(),
        )
    api_key, clear = create_api_key(name="bench")
    return api_key.pk, clear


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
    """Concurrency 1, one request to each target in turn: the same conditions for both."""
    samples = [[] for _ in targets]
    for _ in range(n):
        for index, (url, headers) in enumerate(targets):
            samples[index].append(await timed(session, url, headers, body, first_chunk=first_chunk))
    return samples


async def throughput(session, targets, n: int, concurrency: int) -> tuple[float, int]:
    """Requests per second over `n` requests spread round-robin over `targets`; and how many failed."""
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
    return n / (time.perf_counter() - started), errors


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (uvicorn's worker processes)."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def measure(args, router_url: str, client_key: str, engines, kill_second, pids: dict) -> dict:
    direct = [(f"http://{LOOPBACK}:{port}/v1/chat/completions", {"Authorization": f"Bearer {key}"})
              for port, key in engines]
    routed = (f"{router_url}/v1/chat/completions", {"Authorization": f"Bearer {client_key}"})
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await throughput(session, [*direct, routed], WARMUP_REQUESTS, args.concurrency)
        direct_1, routed_1 = await alternate(session, [direct[0], routed], args.requests, BODY, first_chunk=False)
        direct_ttft, routed_ttft = await alternate(session, [direct[0], routed], args.requests // 2, STREAM_BODY,
                                                   first_chunk=True)
        engines_cpu = sum(cpu_seconds(pid) for pid in pids["engines"])
        direct_rps, direct_errors = await throughput(session, direct, args.throughput_requests, args.concurrency)
        engines_cpu = sum(cpu_seconds(pid) for pid in pids["engines"]) - engines_cpu
        router_cpu = cpu_seconds(pids["router"])
        routed_rps, routed_errors = await throughput(session, [routed], args.throughput_requests, args.concurrency)
        router_cpu = cpu_seconds(pids["router"]) - router_cpu
        kill_second()
        dead_rps, dead_errors = await throughput(session, [routed], args.dead_requests, args.concurrency)
    routed_total = WARMUP_REQUESTS // 3 + args.requests + args.requests // 2 + args.throughput_requests + args.dead_requests
    return {
        "direct_median_ms": median_ms(direct_1), "routed_median_ms": median_ms(routed_1),
        "direct_p99_ms": statistics.quantiles(direct_1, n=100)[98] * 1000,
        "routed_p99_ms": statistics.quantiles(routed_1, n=100)[98] * 1000,
        "direct_ttft_ms": median_ms(direct_ttft), "routed_ttft_ms": median_ms(routed_ttft),
        "direct_rps": direct_rps, "routed_rps": routed_rps, "throughput_errors": direct_errors + routed_errors,
        "dead_rps": dead_rps, "dead_errors": dead_errors, "routed_total": routed_total,
        "engine_cpu_us": engines_cpu / args.throughput_requests * 1e6,
        "router_cpu_us": router_cpu / args.throughput_requests * 1e6,
    }


def report(figures: dict, traces: int, database: str) -> bool:
    added = figures["routed_median_ms"] - figures["direct_median_ms"]
    added_ttft = figures["routed_ttft_ms"] - figures["direct_ttft_ms"]
    share = figures["routed_rps"] / figures["direct_rps"]
    checks = [
        ("added median latency, concurrency 1", f"{added:+.3f} ms (direct {figures['direct_median_ms']:.3f}, "
         f"router {figures['routed_median_ms']:.3f}; p99 {figures['direct_p99_ms']:.2f} / "
         f"{figures['routed_p99_ms']:.2f})", added < TARGET_ADDED_MEDIAN_MS),
        ("throughput, concurrency 16", f"{figures['routed_rps']:.0f} req/s through the router vs "
         f"{figures['direct_rps']:.0f} direct = {share:.0%}", share >= TARGET_THROUGHPUT_SHARE
         and figures["throughput_errors"] == 0),
        ("CPU per request at concurrency 16", f"router {figures['router_cpu_us']:.0f} us, engine "
         f"{figures['engine_cpu_us']:.0f} us (the router's whole cost, whatever else runs on the machine)", True),
        ("streaming time to first chunk, added", f"{added_ttft:+.3f} ms (direct {figures['direct_ttft_ms']:.3f}, "
         f"router {figures['routed_ttft_ms']:.3f})", added_ttft < TARGET_ADDED_TTFT_MS),
        ("one of two engines dead", f"{figures['dead_errors']} errors, {figures['dead_rps']:.0f} req/s",
         figures["dead_errors"] == 0),
        ("traces written", f"{traces} of {figures['routed_total']} routed requests", traces == figures["routed_total"]),
    ]
    print(f"router benchmark ({database}, {os.cpu_count()} CPUs, simulator with zero delay, "
          f"{os.environ.get('BENCH_ROUTER_WORKERS', '?')} router processes)")
    for name, value, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value}")
    return all(ok for _, _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="concurrency-1 requests per target")
    parser.add_argument("--throughput-requests", type=int, default=8000)
    parser.add_argument("--dead-requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--app", default="inventiv.asgi:application", help="the ASGI app uvicorn serves")
    # Production runs one web/router process per core (README, docker-compose WEB_WORKERS); the direct
    # side is two engine processes, so a one-process router would be measured on one core against two.
    parser.add_argument("--router-workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn worker processes serving the router")
    args = parser.parse_args()
    os.environ["BENCH_ROUTER_WORKERS"] = str(args.router_workers)

    var_dir = tempfile.mkdtemp(prefix="inv-bench-router-")
    processes: list[subprocess.Popen] = []
    try:
        setup_environment(var_dir)
        from instances.credentials import mint_credentials

        engines = [(free_port(), mint_credentials().engine_api_key) for _ in range(2)]
        for port, key in engines:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "worker_agent.simulator", "--model", MODEL, "--port", str(port),
                 "--api-key", key, "--ttft", "0", "--tokens-per-second", "0"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        key_id, client_key = register_engines(engines)
        router_port = free_port()
        router = subprocess.Popen(
            [str(Path(sys.executable).parent / "uvicorn"), args.app, "--host", LOOPBACK,
             "--port", str(router_port), "--workers", str(args.router_workers), "--no-access-log",
             "--log-level", "warning"],
            cwd=ROOT, env=os.environ.copy(),
        )
        processes.append(router)
        for port, process in [(engines[0][0], processes[0]), (engines[1][0], processes[1]), (router_port, router)]:
            wait_until_listening(port, process)

        def kill_second() -> None:
            processes[1].send_signal(signal.SIGKILL)
            processes[1].wait()

        pids = {"engines": [processes[0].pid, processes[1].pid], "router": router.pid}
        figures = asyncio.run(measure(args, f"http://{LOOPBACK}:{router_port}", client_key, engines, kill_second, pids))
        router.send_signal(signal.SIGTERM)  # a clean shutdown flushes the last traces
        router.wait(STOP_TIMEOUT_S)
        database = "PostgreSQL" if "postgres" in os.environ["DATABASE_URL"] else "SQLite"
        return 0 if report(figures, trace_count(key_id), database) else 1
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
