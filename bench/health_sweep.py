"""Benchmark: one sweep over 10,000 Mock instances: wall time and database queries per instance.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/anything .venv/bin/python bench/health_sweep.py

PostgreSQL only. The script works in its own database (BENCH_DATABASE, default `inv_bench_lifecycle`, on the
server DATABASE_URL names), migrates it, and for each scenario empties the instances, Mock servers and
action log, bulk-inserts `--instances` instances with their Mock servers, and times one sweep run with
Django's CaptureQueriesContext. Scenarios:

- health sweep, every machine still booting (the usual tick: nothing changes);
- watchdog, every machine ready and its server still there (the steady state of a fleet);
- health sweep, every machine just became ready (the worst tick: one transition + two log rows each).
  A sweep normally stops claiming after SWEEP_BUDGET_S and leaves the rest to the next tick or another
  worker; the budget is lifted here so that one run covers every instance.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import dj_database_url
import psycopg

ROOT = Path(__file__).resolve().parent.parent
INSERT_BATCH = 2_000


def bench_database_url(default_name: str = "inv_bench_lifecycle") -> str:
    """A PostgreSQL database of the benchmark's own (BENCH_DATABASE or `default_name`), created if missing,
    on the server DATABASE_URL names. Shared by every benchmark under bench/."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("DATABASE_URL is required (a PostgreSQL server; the benchmark creates its own database there)")
    config = dj_database_url.parse(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        sys.exit(f"this benchmark runs on PostgreSQL only, not {config['ENGINE']}")
    name = os.environ.get("BENCH_DATABASE", default_name)
    with psycopg.connect(
        dbname="postgres", user=config["USER"] or None, password=config["PASSWORD"] or None,
        host=config["HOST"] or None, port=config["PORT"] or None, autocommit=True,
    ) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventiv.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("loaddata", "catalog", verbosity=0)


def populate(count: int, *, status: str, boots_in_s: float) -> None:
    """`count` Mock instances in `status`, each with a powered-on server that runs `boots_in_s` from now."""
    from django.db import connection
    from django.utils import timezone

    from catalog.models import InstanceType, LlmModel, Provider, Zone
    from instances.models import Instance
    from providers.base import INVENTIV_TAG, instance_tag, server_name
    from providers.models import MockServer

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE instances_instance, providers_mockserver, monitoring_actionlog CASCADE")
    now = timezone.now()
    provider, zone = Provider.objects.get(code="mock"), Zone.objects.get(code="mock-eu-1")
    offer, model = InstanceType.objects.get(code="MOCK-GPU-S"), LlmModel.objects.get(code="mock-echo")
    ids = [uuid.uuid4() for _ in range(count)]
    MockServer.objects.bulk_create(
        [MockServer(id=pk, zone=zone.code, name=server_name(str(pk)), commercial_type=offer.code,
                    tags=[INVENTIV_TAG, instance_tag(str(pk))], instance_id=str(pk), created_at=now,
                    started_at=now, running_at=now + timedelta(seconds=boots_in_s), metadata={"runtime": "none"})
         for pk in ids],
        batch_size=INSERT_BATCH,
    )
    Instance.objects.bulk_create(
        [Instance(id=pk, provider=provider, zone=zone, instance_type=offer, model=model, status=status,
                  provider_server_id=str(pk), public_ip="127.0.0.1", cost_per_hour=offer.cost_per_hour,
                  booted_at=now, startup_deadline_at=now + timedelta(hours=1))
         for pk in ids],
        batch_size=INSERT_BATCH,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE instances_instance, providers_mockserver")


def measure(name: str, sweep, count: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    statements = 0

    def count_statement(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    # CaptureQueriesContext keeps the last 9,000 statements only: the wrapper counts them all.
    with CaptureQueriesContext(connection), connection.execute_wrapper(count_statement):
        started = time.perf_counter()
        worked = sweep()
        elapsed = time.perf_counter() - started
    print(f"{name:52} {worked:>7,} {elapsed:8.2f} s {statements:>8,} {statements / max(worked, 1):8.3f} "
          f"{worked / elapsed:10,.0f}")
    if worked != count:
        print(f"  ! the sweep worked on {worked} of {count} instances")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    args = parser.parse_args()
    setup_django(bench_database_url())

    from catalog.models import RuntimeSetting
    from instances import claims, sweeps
    from instances.models import Instance
    from instances.status import Status

    RuntimeSetting.objects.filter(key__in=["mock_boot_delay_s", "mock_deletion_delay_s"]).update(value="0")
    claims.SWEEP_BUDGET_S = float("inf")  # one run over every instance (see the module docstring)
    count = args.instances
    print(f"{'scenario':52} {'worked':>7} {'wall':>10} {'queries':>8} {'q/inst':>8} {'inst/s':>10}")

    populate(count, status=Status.BOOTING, boots_in_s=3600)
    measure("health sweep, all still booting", sweeps.sweep_startup_health, count)

    populate(count, status=Status.READY, boots_in_s=0)
    measure("watchdog, all ready and present", sweeps.sweep_watchdog, count)

    populate(count, status=Status.BOOTING, boots_in_s=0)
    measure("health sweep, all become ready", sweeps.sweep_startup_health, count)
    ready = Instance.objects.filter(status=Status.READY).count()
    print(f"  {ready:,} of {count:,} instances are ready after it")


if __name__ == "__main__":
    main()
