"""Benchmark: 500 Mock instances requested at once through the HTTP API, create -> ready latency.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/anything REDIS_URL=redis://127.0.0.1:6379/4 \
        .venv/bin/python bench/provision.py [--instances 500] [--workers 1] [--pool threads] [--concurrency 8]

PostgreSQL and Redis only: the point is the production setup. The script works in its own database
(BENCH_DATABASE, default `inv_bench_lifecycle`), migrates and seeds it, sets the Mock cloud's delays to
zero, starts the web server (uvicorn) and real Celery workers as subprocesses, sends every
`POST /api/instances/` at once from `--clients` threads with a staff token, and waits until every
instance is ready. Latency per instance is ready_at - created_at as the database recorded them.
Target: median < 2 s.

Besides the latencies it prints the process layout and where the CPU went, per instance: the web server,
each Celery worker with its pool processes, the database backends still open at the end, and the client
threads (this process); and how many database sessions were opened (one per task where Celery closes its
connection after each).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from health_sweep import ROOT, bench_database_url  # noqa: E402  (same database set-up)
from health_sweep import setup_django as setup_bench_django  # noqa: E402

TARGET_MEDIAN_S = 2.0
START_TIMEOUT_S = 60
READY_TIMEOUT_S = 600
POLL_S = 0.25
HTTP_TIMEOUT_S = 60
DEFAULT_WEB_THREADS = 8  # inventiv/asgi.py's WEB_THREADS default
# PostgreSQL counts a session when its backend exits; give the stopped processes' backends time to report.
STATS_FLUSH_S = 1
MOCK_REQUEST = {"provider": "mock", "zone": "mock-eu-1", "instance_type": "MOCK-GPU-S", "model": "mock-echo"}


def setup_django(url: str) -> None:
    setup_bench_django(url)
    from django.db import connection

    from catalog.models import RuntimeSetting

    with connection.cursor() as cursor:
        # CASCADE: and whatever refers to them (join tokens, heartbeat samples...).
        cursor.execute("TRUNCATE instances_instance, providers_mockserver, providers_mockfault, monitoring_actionlog "
                       "CASCADE")
    RuntimeSetting.objects.filter(key__in=["mock_boot_delay_s", "mock_deletion_delay_s"]).update(value="0")


def staff_token() -> str:
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    return AuthToken.objects.create(user, expiry=None)[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """The subprocesses this benchmark starts; each is stopped by its own pid."""

    def __init__(self, env: dict, log_dir: Path):
        self.env, self.log_dir, self.started = env, log_dir, []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> Path:
        log = self.log_dir / f"{name}.log"
        handle = open(log, "wb")
        process = subprocess.Popen(argv, cwd=ROOT, env=env or self.env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.started.append((process, handle))
        return log

    def check_alive(self) -> None:
        for process, handle in self.started:
            if process.poll() is not None:
                sys.exit(f"{process.args[2:4]} exited with {process.returncode}; see {handle.name}")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each started process and its children (prefork pools)."""
        used = {}
        for process, handle in self.started:
            name = Path(handle.name).stem
            try:
                tree = psutil.Process(process.pid)
                used[name] = sum(_cpu(member) for member in [tree, *tree.children(recursive=True)])
            except psutil.NoSuchProcess:
                used[name] = 0.0
        return used

    def stop(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, handle in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            handle.close()


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def database_cpu_seconds(database: str) -> dict[int, float]:
    """CPU time used so far by each live PostgreSQL backend serving `database`, by pid (empty when the
    server runs elsewhere or its processes cannot be seen). A backend that exits before it is looked at
    (a connection closed after each task) is not counted: `database_sessions` tells how many there were."""
    used = {}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if cmdline.startswith("postgres: ") and f" {database} " in cmdline:
            used[process.pid] = _cpu(process)
    return used


def database_sessions() -> int:
    """Connections ever opened to the benchmark's database (PostgreSQL counts them as they end)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


class CpuMeter:
    """CPU time spent between `start()` and `stop()` by the web server, the workers, the database
    backends and this process (the client threads)."""

    def __init__(self, processes: Processes, database: str):
        self.processes, self.database = processes, database

    def _now(self) -> tuple[dict[str, float], dict[int, float], float]:
        return self.processes.cpu_seconds(), database_cpu_seconds(self.database), _cpu(psutil.Process())

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> dict[str, float]:
        (procs0, db0, client0), (procs1, db1, client1) = self.before, self._now()
        used = {name: procs1[name] - procs0.get(name, 0.0) for name in procs1}
        used["postgres"] = sum(seconds - db0.get(pid, 0.0) for pid, seconds in db1.items())
        used["client"] = client1 - client0
        return used


def wait_until(condition, what: str, processes: Processes, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        processes.check_alive()
        time.sleep(POLL_S)
    sys.exit(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def layout(args) -> str:
    """The processes this run used, as they would run in production (docker-compose.yml and `make run`
    run the same commands: WORKER_POOL, threads by default, with WORKER_CONCURRENCY tasks at once, 8)."""
    from django.conf import settings

    reuse = getattr(settings, "CELERY_DB_REUSE_MAX", None)
    connection = f"reused for {reuse} tasks" if reuse else "closed after every task (Celery's default)"
    unit = "threads" if args.pool == "threads" else f"{args.pool} processes"
    return (f"Celery: {args.workers} worker x {args.concurrency} {unit}, database connection "
            f"{connection}; web: {args.web_workers} uvicorn {args.web} worker x "
            f"{os.environ.get('WEB_THREADS', DEFAULT_WEB_THREADS)} threads; {args.clients} client threads; "
            f"{os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (each with --concurrency)")
    # What `make run` and docker-compose start (WORKER_POOL, WORKER_CONCURRENCY): the tasks mostly wait on the
    # provider and the database, so threads in one process.
    parser.add_argument("--pool", choices=["threads", "prefork", "solo"],
                        default=os.environ.get("WORKER_POOL", "threads"))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", 8)))
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--web", choices=["asgi", "wsgi"], default="asgi", help="how uvicorn serves Django")
    parser.add_argument("--clients", type=int, default=8, help="threads sending the requests")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("REDIS_URL is required (the broker real workers consume from)")
    url = bench_database_url()
    setup_django(url)
    from django.conf import settings

    from instances.models import Instance
    from instances.status import Status
    from inventiv.celery import app

    token = staff_token()
    app.control.purge()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": settings.SECRET_KEY, "ALLOWED_HOSTS": "127.0.0.1",
           "LOG_LEVEL": "WARNING", "CELERY_TASK_ALWAYS_EAGER": "false"}
    processes = Processes(env, Path(tempfile.mkdtemp(prefix="inventiv-bench-")))
    if args.web == "asgi":
        # What production runs: Django on the ASGI app's fixed thread pool (persistent connections).
        web_env, app_path = env, "inventiv.asgi:application"
    else:
        # WSGI runs views on a fixed thread pool, so each thread keeps its database connection.
        web_env, app_path = env, "inventiv.wsgi:application"
    try:
        processes.start("web", env=web_env, argv=[
            sys.executable, "-m", "uvicorn", app_path, "--interface", {"asgi": "asgi3"}.get(args.web, args.web),
            "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(args.web_workers), "--log-level", "warning",
        ])
        logs = [processes.start(f"worker{n}", [sys.executable, "-m", "celery", "-A", "inventiv", "worker",
                                               f"--pool={args.pool}", f"--concurrency={args.concurrency}",
                                               "--loglevel=INFO",
                                               "--without-gossip", "--without-mingle", "-n", f"bench{n}@%h"])
                for n in range(args.workers)]
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/api/version/"), "the web server", processes)
        wait_until(lambda: all(" ready." in log.read_text(errors="replace") for log in logs), "the Celery workers",
                   processes)

        def post(_):
            with requests.Session() as session:
                started = time.perf_counter()
                response = session.post(f"http://127.0.0.1:{port}/api/instances/", json=MOCK_REQUEST,
                                        headers={"Authorization": f"Token {token}"}, timeout=HTTP_TIMEOUT_S)
                return response.status_code, time.perf_counter() - started

        meter = CpuMeter(processes, database=url.rsplit("/", 1)[1])
        meter.start()
        sessions_before = database_sessions()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            answers = list(pool.map(post, range(args.instances)))
        sent = time.perf_counter() - started
        refused = [code for code, _ in answers if code != 202]
        if refused:
            sys.exit(f"{len(refused)} requests were not accepted: {sorted(set(refused))}")
        pending = Instance.objects.exclude(status__in=[Status.READY, Status.PROVISIONING_FAILED, Status.FAILED])
        wait_until(lambda: not pending.exists(), "every instance to be ready", processes, READY_TIMEOUT_S)
        wall = time.perf_counter() - started
        cpu = meter.stop()
    finally:
        processes.stop()
    time.sleep(STATS_FLUSH_S)
    sessions = database_sessions() - sessions_before

    rows = list(Instance.objects.values_list("status", "created_at", "ready_at"))
    latencies = [(ready - created).total_seconds() for status, created, ready in rows if status == Status.READY]
    post_latencies = [seconds for _, seconds in answers]
    from providers.models import MockServer

    print(f"instances requested      {args.instances}")
    print(f"process layout           {layout(args)}")
    print(f"ready                    {len(latencies)}   Mock servers: {MockServer.objects.count()}")
    print(f"POST latency             median {statistics.median(post_latencies) * 1000:.0f} ms, "
          f"p95 {percentile(post_latencies, 0.95) * 1000:.0f} ms; all sent in {sent:.2f} s")
    print(f"create -> ready          median {statistics.median(latencies):.3f} s, "
          f"p95 {percentile(latencies, 0.95):.3f} s, max {max(latencies):.3f} s")
    print(f"all ready after          {wall:.2f} s ({len(latencies) / wall:.0f} instances/s)")
    per_instance = ", ".join(f"{name} {seconds * 1000 / args.instances:.1f}" for name, seconds in cpu.items())
    print(f"CPU ms per instance      {per_instance} (total {sum(cpu.values()) * 1000 / args.instances:.1f}; "
          f"load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"database sessions        {sessions} opened ({sessions / args.instances:.1f} per instance; postgres CPU "
          f"above counts only those still open at the end)")
    verdict = "meets" if statistics.median(latencies) < TARGET_MEDIAN_S else "misses"
    print(f"target median < {TARGET_MEDIAN_S:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
