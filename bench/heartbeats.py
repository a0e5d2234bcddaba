"""Benchmark: worker heartbeat ingestion (POST /api/worker/heartbeat) on PostgreSQL, production web settings.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/anything .venv/bin/python bench/heartbeats.py \
        [--instances 2000] [--requests 20000] [--connections 64] [--web-workers 2] [--web wsgi|asgi]

The script works in its own database (BENCH_DATABASE, default `inv_bench_hb`), migrates and seeds it, and
inserts `--instances` ready Mock instances, each with a minted worker token and a registered worker. It
starts uvicorn as in production (`--web-workers` processes, DEBUG off, persistent database connections)
and sends `--requests` heartbeats, round-robin over the instances, from an aiohttp client holding
`--connections` concurrent connections to 127.0.0.1; a short warm-up is not counted. It prints
heartbeats/s, p50/p95/max latency, errors, the queries one heartbeat costs (measured in-process), and
the CPU time one heartbeat costs the web workers, PostgreSQL and the load generator, with the rate that
CPU cost allows on idle cores (the machine may be shared with other jobs while it runs).

`--web asgi` (the default) serves `inventiv.asgi:application`, what production runs: heartbeats take the
raw ASGI fast path (instances/worker_asgi.py) on a fixed thread pool. `--web wsgi` serves Django's WSGI
application from uvicorn's thread pool, for comparison. Target: >= 1,000 heartbeats/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE", "inv_bench_hb")
from health_sweep import bench_database_url, setup_django  # noqa: E402  (same database set-up)
from provision import Processes, free_port, http_ok, percentile, wait_until  # noqa: E402

TARGET_PER_S = 1_000
WARM_UP_REQUESTS = 500
HTTP_TIMEOUT_S = 30
INSERT_BATCH = 2_000
# Persistent connections for the WSGI thread pool: longer than the benchmark runs.
CONN_MAX_AGE_S = 600


def populate(count: int) -> list[tuple[str, str]]:
    """`count` ready Mock instances with registered workers; returns (instance id, worker token) pairs."""
    from django.db import connection
    from django.utils import timezone

    from catalog.models import InstanceType, LlmModel, Provider, Zone
    from instances.models import Instance
    from instances.status import Status
    from monitoring.models import WorkerState

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE instances_instance, monitoring_workerstate, monitoring_heartbeatsample, "
                       "monitoring_actionlog CASCADE")
    now = timezone.now()
    placement = {"provider": Provider.objects.get(code="mock"), "zone": Zone.objects.get(code="mock-eu-1"),
                 "instance_type": InstanceType.objects.get(code="MOCK-GPU-S"),
                 "model": LlmModel.objects.get(code="mock-echo")}
    workers = [(uuid.uuid4(), secrets.token_urlsafe(32)) for _ in range(count)]
    Instance.objects.bulk_create(
        [Instance(pk=pk, status=Status.READY, ready_at=now, public_ip="127.0.0.1", engine_port=8000,
                  worker_token_hash=hashlib.sha256(token.encode()).hexdigest(), **placement)
         for pk, token in workers],
        batch_size=INSERT_BATCH,
    )
    WorkerState.objects.bulk_create(
        [WorkerState(instance_id=pk, registered_at=now, last_heartbeat_at=now, status="ready", model="mock-echo")
         for pk, _ in workers],
        batch_size=INSERT_BATCH,
    )
    return [(str(pk), token) for pk, token in workers]


def heartbeat_body(instance_id: str) -> bytes:
    """A heartbeat as the agent sends it for a ready machine with one GPU (PROTOCOL.md, section 3)."""
    return json.dumps({
        "instance_id": instance_id, "status": "ready", "reason": None, "model": "mock-echo",
        "sent_at": "2026-11-26T21:42:10.345678+00:00", "in_flight": 3,
        "engine": {"running": 2, "waiting": 1, "kv_cache_usage": 0.41, "ttft_p50_s": 0.2, "ttft_p95_s": 0.45,
                   "itl_p50_s": 0.024, "itl_p95_s": 0.061, "prompt_tokens_total": 3145728,
                   "generation_tokens_total": 786432, "requests_total": 397, "preemptions_total": 4},
        "gpus": [{"index": 0, "name": "NVIDIA L4", "utilization_pct": 40, "memory_used_mb": 615,
                  "memory_total_mb": 23034, "temperature_c": 38, "power_w": 80.4, "power_limit_w": 72.0}],
        "host": {"cpu_pct": 3.5, "memory_used_mb": 9120, "memory_total_mb": 48128, "disk_used_gb": 61.2,
                 "disk_total_gb": 200.0, "net_rx_bytes": 123456789, "net_tx_bytes": 98765432},
    }).encode()


def queries_per_heartbeat(instance_id: str, token: str) -> list[str]:
    """The SQL one steady-state heartbeat runs (transaction control left out)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    def send():
        answer = Client(HTTP_HOST="127.0.0.1").post("/api/worker/heartbeat", data=heartbeat_body(instance_id),
                                                    content_type="application/json",
                                                    HTTP_AUTHORIZATION=f"Bearer {token}")
        if answer.status_code != 200:
            sys.exit(f"the in-process heartbeat was answered {answer.status_code}: {answer.content[:200]!r}")

    send()  # the first one of a process also reads the heartbeat interval setting
    with CaptureQueriesContext(connection) as queries:
        send()
    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [query["sql"] for query in queries if not query["sql"].startswith(control)]


async def drive(url: str, workers: list[tuple[str, str]], *, total: int, connections: int,
                offset: int = 0) -> tuple[list[float], dict[int, int], float]:
    """Send `total` heartbeats from `connections` concurrent connections; (latencies, status counts, wall s)."""
    requests = [(heartbeat_body(pk), {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                for pk, token in workers]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < total:
            body, headers = requests[(offset + next_index) % len(requests)]
            next_index += 1
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(connections)))
        wall = time.perf_counter() - started
    return latencies, statuses, wall


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by the processes `pids` (those gone count 0)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def database_backends() -> list[int]:
    """The PostgreSQL server processes serving the bench database (the web workers' persistent ones)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web", choices=["wsgi", "asgi"], default="asgi", help="how uvicorn serves Django")
    args = parser.parse_args()
    url = bench_database_url()
    setup_django(url)
    from django.conf import settings

    from monitoring.models import HeartbeatSample

    workers = populate(args.instances)
    queries = queries_per_heartbeat(*workers[0])
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": settings.SECRET_KEY, "ALLOWED_HOSTS": "127.0.0.1",
           "DEBUG": "false", "LOG_LEVEL": "WARNING",
           "DB_CONN_MAX_AGE": str(CONN_MAX_AGE_S)}
    app_path = {"wsgi": "inventiv.wsgi:application", "asgi": "inventiv.asgi:application"}[args.web]
    processes = Processes(env, Path(tempfile.mkdtemp(prefix="inventiv-bench-hb-")))
    target = f"http://127.0.0.1:{port}/api/worker/heartbeat"
    try:
        processes.start("web", [sys.executable, "-m", "uvicorn", app_path, "--interface",
                                {"wsgi": "wsgi", "asgi": "asgi3"}[args.web], "--host", "127.0.0.1",
                                "--port", str(port), "--workers", str(args.web_workers), "--log-level", "warning",
                                "--no-access-log"])
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/api/version/"), "the web server", processes)
        samples_before = HeartbeatSample.objects.count()
        asyncio.run(drive(target, workers, total=WARM_UP_REQUESTS, connections=args.connections))
        web = psutil.Process(processes.started[0][0].pid)
        web_pids = [web.pid] + [child.pid for child in web.children(recursive=True)]
        backends = database_backends()
        cpu_before = (cpu_seconds(web_pids), cpu_seconds(backends), time.process_time())
        latencies, statuses, wall = asyncio.run(
            drive(target, workers, total=args.requests, connections=args.connections, offset=WARM_UP_REQUESTS)
        )
        cpu_after = (cpu_seconds(web_pids), cpu_seconds(backends), time.process_time())
    finally:
        processes.stop()

    ok = statuses.get(200, 0)
    stored = HeartbeatSample.objects.count() - samples_before - WARM_UP_REQUESTS
    rate = ok / wall
    print(f"instances                {args.instances} ready, registered workers")
    print(f"web                      uvicorn {args.web}, {args.web_workers} worker processes, DEBUG off, "
          f"DB_CONN_MAX_AGE={env['DB_CONN_MAX_AGE']}")
    print(f"load                     {args.requests} heartbeats from {args.connections} connections "
          f"(+{WARM_UP_REQUESTS} warm-up)")
    print(f"queries per heartbeat    {len(queries)}")
    for sql in queries:
        print(f"    {' '.join(sql.split())[:150]}")
    print(f"heartbeats/s             {rate:.0f} ({ok} in {wall:.2f} s)")
    print(f"latency                  p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {percentile(latencies, 0.95) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    errors = {status: count for status, count in statuses.items() if status != 200}
    print(f"errors                   {sum(errors.values())} {errors if errors else ''}")
    print(f"samples stored           {stored} (one per accepted heartbeat)")
    web_cpu, db_cpu, client_cpu = (after - before for after, before in zip(cpu_after, cpu_before, strict=True))
    print(f"CPU per heartbeat        web {web_cpu / ok * 1000:.2f} ms, PostgreSQL {db_cpu / ok * 1000:.2f} ms, "
          f"load generator {client_cpu / ok * 1000:.2f} ms (machine: {psutil.cpu_count()} cores; "
          f"{os.getloadavg()[0]:.1f} load average at the end)")
    # What the same work would reach with every core to itself: the machine may be shared with other jobs.
    ceiling = psutil.cpu_count() / ((web_cpu + db_cpu + client_cpu) / ok)
    print(f"CPU-bound ceiling        {ceiling:.0f} heartbeats/s on {psutil.cpu_count()} idle cores")
    print(f"target >= {TARGET_PER_S}/s: {'meets' if rate >= TARGET_PER_S and not errors else 'misses'}")


if __name__ == "__main__":
    main()
