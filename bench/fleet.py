"""What the router benchmarks share: simulator engines as processes, registered as ready instances in a
database of the benchmark's own, and the router served by uvicorn as a subprocess. 127.0.0.1 only.

With DATABASE_URL (PostgreSQL) a benchmark works in its own database (BENCH_DATABASE); otherwise in a
temporary SQLite file under the benchmark's var directory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MODEL = "mock-echo"
START_TIMEOUT_S = 30
POLL_S = 0.05
# The router's usage writer flushes every second; its shutdown flush writes the rest.
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


def setup_environment(var_dir: str, *, database: str) -> None:
    """Django on the benchmark's own database (`database`: its name on PostgreSQL), migrated and seeded.
    Subprocesses started afterwards inherit the same environment (and SECRET_KEY, from `var_dir`)."""
    os.environ["INVENTIV_VAR_DIR"] = var_dir
    os.environ["DEBUG"] = "0"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "inventiv.settings"
    if os.environ.get("DATABASE_URL"):
        sys.path.insert(0, str(ROOT / "bench"))
        from health_sweep import bench_database_url

        os.environ.setdefault("BENCH_DATABASE", database)
        os.environ["DATABASE_URL"] = bench_database_url()
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir}/bench.sqlite3"
    # The repository before bench/: `router` is the Django app, not bench/router.py.
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("loaddata", "catalog", verbosity=0)


def database_kind() -> str:
    return "PostgreSQL" if "postgres" in os.environ["DATABASE_URL"] else "SQLite"


def engine_key() -> str:
    from instances.credentials import mint_credentials

    return mint_credentials().engine_api_key


def register_engines(ports_and_keys) -> None:
    """Ready instances for the engines; an earlier phase's are retired."""
    from django.utils import timezone

    from catalog.models import InstanceType, LlmModel, Provider, Zone
    from instances.credentials import MintedCredentials
    from instances.models import Instance
    from instances.status import Status

    Instance.objects.filter(status=Status.READY).update(status=Status.TERMINATED)
    for port, key in ports_and_keys:
        Instance.objects.create(
            provider=Provider.objects.get(code="mock"), zone=Zone.objects.get(code="mock-eu-1"),
            instance_type=InstanceType.objects.get(code="MOCK-GPU-S"), model=LlmModel.objects.get(code=MODEL),
            status=Status.READY, ready_at=timezone.now(), public_ip=LOOPBACK, engine_port=port,
            engine_api_key_encrypted=MintedCredentials("unused", key).encrypted_engine_api_key(),
        )


def client_key(name: str = "bench") -> tuple[int, str]:
    """A fresh API key: its id and its clear value."""
    from router.services import create_api_key

    api_key, clear = create_api_key(name=name)
    return api_key.pk, clear


def start_engine(port: int, key: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "worker_agent.simulator", "--model", MODEL, "--port", str(port), "--api-key", key,
         *flags],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def start_pipe(port: int, target_port: int) -> subprocess.Popen:
    """bench/pipe.py: a byte pipe on `port` to `target_port`, one target connection per client connection."""
    return subprocess.Popen([sys.executable, str(Path(__file__).with_name("pipe.py")), str(port), str(target_port)])


ROUTER_APP = "inventiv.asgi:application"
# uvicorn's HTTP protocol with the data plane's express lane, as production serves it (README, Running it).
ROUTER_HTTP = "inventiv.asgi:HttpProtocol"


def start_router(port: int, *, workers: int, app: str = ROUTER_APP, http: str | None = ROUTER_HTTP,
                 cwd: Path = ROOT, **env: str) -> subprocess.Popen:
    """uvicorn serving the ASGI app (production settings: DEBUG off, key checks, limits, traces); `http`:
    its HTTP protocol (None: uvicorn's own); `cwd`: the checkout it runs (the default: this one)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), app, "--host", LOOPBACK, "--port", str(port),
         "--workers", str(workers), "--no-access-log", "--log-level", "warning",
         *(["--http", http] if http else [])],
        cwd=cwd, env={**os.environ, **env},
    )


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (a router's clean shutdown flushes its last traces), SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


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


def connections_per_worker(pid: int, port: int) -> list[int]:
    """Client connections each uvicorn worker process of `pid` holds on `port`."""
    counts = []
    for child in psutil.Process(pid).children():
        try:
            connections = child.net_connections("tcp")
        except psutil.Error:
            continue
        held = sum(1 for each in connections if each.laddr and each.laddr.port == port and each.status == "ESTABLISHED")
        if held or "multiprocessing.resource_tracker" not in " ".join(child.cmdline()):
            counts.append(held)
    return sorted(counts, reverse=True)
