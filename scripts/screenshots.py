"""Take the README's screenshots of the main pages (docs/screenshots/*.png), against the Mock cloud.

    .venv/bin/python scripts/screenshots.py

It works on a database of its own, never on Inventiv's (DATABASE_URL is ignored): a SQLite file,
var/screenshots.sqlite3, or the throwaway PostgreSQL database that SCREENSHOTS_DATABASE_URL names (created
when missing). That database is EMPTIED first, then seeded, and a little state is made through the services: a pool with two Mock instances, a third instance
terminated, a few hours of cost rows, API keys and an hour of request traces. Inventiv is then started on a
free loopback port (uvicorn, the Mock cloud's `none` runtime), Chromium (Playwright, /usr/bin/chromium) signs
in and saves each page at 1400 px wide, and the PNGs are squeezed with pngquant and optipng when installed.
Nothing leaves the host. Run it again after a change to a page, and commit the PNGs (README, "Screenshots").
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'var' / 'screenshots.sqlite3'}"
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1400, 900
# Each picture is the page from its top, cut to its content's height within these bounds.
MIN_HEIGHT, MAX_HEIGHT = 560, 1300
START_TIMEOUT_S = 60
PREFERRED_PORT = 8000
HISTORY_HOURS = 6
TRACES = 90
PAGES = [  # (file name, path or a callable of the state, what to wait for)
    ("dashboard", "/", "#home-spend-chart"),
    ("instances", "/instances/", "table.instances-table"),
    ("instance", lambda state: f"/instances/{state['instance']}/", "#instance-detail"),
    ("pools", "/pools/", "table.pools-table"),
    ("pool", lambda state: f"/pools/{state['pool']}/", "canvas[data-chart=pool]"),
    ("monitoring", "/monitoring/", "table"),
    ("finops", "/finops/", "canvas"),
    ("playground", "/playground/", "form"),
    ("settings", "/settings/", "table"),
]

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventiv.settings")
os.environ["INVENTIV_MOCK_RUNTIME"] = "none"  # no agent processes: the pages, not the machines, are the subject


def ensure_database(url: str) -> None:
    """CREATE DATABASE when the one named in `url` does not exist (connecting to `postgres` on that server)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def make_state(password: str) -> dict:
    """An empty, seeded database with a little history, made through the services as an operator would."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from autoscaling.models import Pool, PoolChoice, PoolSample
    from catalog.models import InstanceType, LlmModel, RuntimeSetting, Zone
    from catalog.runtime_settings import update_setting
    from finops.services import accrue_costs
    from inventiv.celery import app
    from instances.models import Instance
    from instances.requests import request_instance
    from instances.termination import terminate_instance
    from router.services import create_api_key
    from router.usage import TraceRecord, write_traces

    call_command("migrate", verbosity=0, interactive=False)
    call_command("flush", verbosity=0, interactive=False)
    call_command("seed_catalog", verbosity=0)
    app.conf.task_always_eager = True  # provisioning runs here, at once (autocommit: on_commit fires at once)
    for key in ("mock_boot_delay_s", "mock_deletion_delay_s"):
        update_setting(RuntimeSetting.objects.get(key=key), value=0)
    admin = get_user_model().objects.create_superuser("admin", "", password)

    model = LlmModel.objects.get(code="mock-echo")
    pool = Pool.objects.create(name="echo", model=model, min_size=2, max_size=4, target_in_flight=4)
    PoolChoice.objects.create(pool=pool, position=1, instance_type=InstanceType.objects.get(code="MOCK-GPU-S"),
                              zone=Zone.objects.get(code="mock-eu-1"))
    request = {"provider": "mock", "zone": "mock-eu-1", "instance_type": "MOCK-GPU-S", "model": "mock-echo"}
    members = [request_instance(**request, pool_id=pool.pk, actor=admin) for _ in range(2)]
    ended = request_instance(**request, actor=admin)
    now = timezone.now()
    # A little history: the machines were rented hours ago, so that FinOps and the Dashboard draw spend.
    for hours, instance in zip((HISTORY_HOURS, HISTORY_HOURS - 2, HISTORY_HOURS - 1), members + [ended]):
        rented_at = now - timedelta(hours=hours)
        Instance.objects.filter(pk=instance.pk).update(created_at=rented_at, provider_created_at=rented_at)
    Instance.objects.filter(pk__in=[m.pk for m in members]).update(pool=pool)
    terminate_instance(Instance.objects.get(pk=ended.pk), reason="screenshot: an ended instance", actor=admin)
    Instance.objects.filter(pk=ended.pk).update(terminated_at=now - timedelta(hours=2))
    accrue_costs(now=now)

    key, _ = create_api_key(name="batch-jobs", created_by=admin, requests_per_minute=600, source="screenshots")
    create_api_key(name="playground", created_by=admin, source="screenshots")
    rng = random.Random(15)
    write_traces([TraceRecord(
        api_key_id=key.pk, endpoint="/v1/chat/completions", model="mock-echo", status_code=200, outcome="ok",
        created_at=now - timedelta(seconds=rng.uniform(5, 3600)), latency_ms=rng.uniform(120, 900),
        instance_id=str(rng.choice(members).pk), stream=True, prompt_tokens=rng.randint(20, 600),
        completion_tokens=rng.randint(20, 400), ttft_ms=rng.uniform(40, 220),
    ) for _ in range(TRACES)])
    for minute in range(60, 0, -2):
        load = 2 + (60 - minute) // 10
        PoolSample.objects.create(pool=pool, at=now - timedelta(minutes=minute), ready=2, desired=2,
                                  in_flight=load, reason="steady: load within target")
    return {"instance": members[0].pk, "pool": pool.name}


def free_port() -> int:
    """`make run`'s port when it is free (the Playground shows the address it is served at), any other else."""
    for wanted in (PREFERRED_PORT, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", wanted))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise SystemExit("no free loopback port")


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "uvicorn"), "inventiv.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], cwd=ROOT, env={**os.environ, "INVENTIV_PUBLIC_URL":
         f"http://127.0.0.1:{port}"},
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (URLError, ConnectionError, TimeoutError):
            if server.poll() is not None:
                raise SystemExit(f"Inventiv exited with status {server.returncode} before it answered")
            time.sleep(0.25)
    server.terminate()
    raise SystemExit(f"Inventiv did not answer within {START_TIMEOUT_S} s")


def shoot(base_url: str, password: str, state: dict) -> list[Path]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(base_url=base_url, viewport={"width": WIDTH, "height": HEIGHT})
        # Only the loopback server answers: the pictures show what an offline operator sees.
        page.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname == "127.0.0.1"
                   else route.abort())
        page.goto("/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url("**/")
        for name, path, ready in PAGES:
            page.goto(path(state) if callable(path) else path)
            page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            # Charts animate in; a frame taken mid-animation would show half-drawn bars.
            page.evaluate("() => window.Chart && Object.values(Chart.instances).forEach((c) => c.stop() && c.update('none'))")
            target = OUT / f"{name}.png"
            height = page.evaluate("() => Math.ceil(document.querySelector('footer').getBoundingClientRect().bottom + scrollY)")
            page.screenshot(path=str(target), full_page=True,
                            clip={"x": 0, "y": 0, "width": WIDTH, "height": max(MIN_HEIGHT, min(height, MAX_HEIGHT))})
            saved.append(target)
        browser.close()
    return saved


def squeeze(paths: list[Path]) -> None:
    """Lossy palette reduction (pngquant) then lossless recompression (optipng), each when installed."""
    if shutil.which("pngquant"):
        subprocess.run(["pngquant", "--force", "--skip-if-larger", "--quality=70-95", "--ext", ".png",
                        *map(str, paths)], check=False)
    if shutil.which("optipng"):
        subprocess.run(["optipng", "-quiet", "-o2", *map(str, paths)], check=False)


def main() -> None:
    url = os.environ.get("SCREENSHOTS_DATABASE_URL") or DEFAULT_DATABASE_URL
    if url.startswith("postgres"):
        ensure_database(url)
    (ROOT / "var").mkdir(exist_ok=True)
    os.environ["DATABASE_URL"] = url  # for this process and the server it starts
    import django

    django.setup()
    password = secrets.token_urlsafe(12)
    state = make_state(password)
    port = free_port()
    server = start_server(port)
    try:
        saved = shoot(f"http://127.0.0.1:{port}", password, state)
    finally:
        server.terminate()
        server.wait(timeout=START_TIMEOUT_S)
    squeeze(saved)
    for path in saved:
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
