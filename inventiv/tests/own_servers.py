"""Servers a test owns and may stop: a PostgreSQL cluster and a Redis on free loopback ports, and the control
plane's processes (web, Celery worker) pointed at them. Outage tests stop these, never the shared servers.

PostgreSQL refuses to run as root: where the tests run as root, the cluster belongs to the `postgres` user
(`runuser`). A machine without PostgreSQL's or Redis's binaries skips the tests that need them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
POLL_S = 0.1
PG_BIN_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _postgres_user() -> str | None:
    if os.geteuid() != 0:
        return None  # a cluster of the user running the tests
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return None


def needs_postgresql_binaries():
    return pytest.mark.skipif(
        not PG_BIN_DIRS or (os.geteuid() == 0 and _postgres_user() is None),
        reason="needs PostgreSQL's server binaries (initdb, pg_ctl) and, as root, a `postgres` user",
    )


def needs_redis_server():
    return pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


class OwnPostgres:
    """A throw-away PostgreSQL cluster (trust authentication, no fsync) on a free port."""

    def __init__(self):
        self.bin = Path(PG_BIN_DIRS[-1])
        self.user = _postgres_user()
        # Not under pytest's tmp_path: as root that folder is closed to the `postgres` user.
        self.root = Path(tempfile.mkdtemp(prefix="inventiv-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgresql.log"
        self.port = free_port()
        if self.user:
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{LOOPBACK}:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_S)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected, as a restart does; `immediate`: as a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", name)

    @classmethod
    @contextlib.contextmanager
    def running(cls, database: str) -> Iterator[OwnPostgres]:
        """A started cluster holding `database`, destroyed on the way out whatever happened."""
        cluster = cls()
        try:
            cluster.start()
            cluster.create_database(database)
            yield cluster
        finally:
            cluster.destroy()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis:
    """A redis-server without persistence on a free port; `stop(kill=True)` is a crash."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{LOOPBACK}:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", LOOPBACK, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), timeout=START_TIMEOUT_S, what="redis-server")

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path) -> Iterator[OwnRedis]:
        """A started redis-server, killed on the way out whatever happened."""
        server = cls(root)
        server.start()
        try:
            yield server
        finally:
            server.stop(kill=True)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(STOP_TIMEOUT_S)


class ControlPlane:
    """Inventiv's own processes (manage.py commands, uvicorn, Celery) against the given database and broker,
    sharing one var folder (so one SECRET_KEY)."""

    def __init__(self, root: Path, *, database_url: str, redis_url: str | None = None, **env: str):
        self.root = root
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "TEST_DATABASE_NAME")}
        self.env.update(DATABASE_URL=database_url, INVENTIV_VAR_DIR=str(root / "var"), LOG_LEVEL="INFO", **env)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.processes: list[tuple[subprocess.Popen, object]] = []

    def manage(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        return done.stdout

    def spawn(self, name: str, *command: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        process = subprocess.Popen([sys.executable, *command], cwd=settings.BASE_DIR, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((process, log))
        return process

    def web(self, *, threads: int = 2, http: str | None = None) -> str:
        """Serve inventiv.asgi with uvicorn (`http`: its HTTP protocol, as `--http` names it; production's is
        inventiv.asgi:HttpProtocol); returns its base URL once it answers."""
        port = free_port()
        self.env["WEB_THREADS"] = str(threads)
        self.spawn("web", "-m", "uvicorn", "inventiv.asgi:application", "--host", LOOPBACK, "--port", str(port),
                   "--log-level", "warning", *(["--http", http] if http else []))
        wait_until(lambda: port_open(port), timeout=START_TIMEOUT_S, what="the web server")
        return f"http://{LOOPBACK}:{port}"

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process, log in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(STOP_TIMEOUT_S)
            log.close()
