"""Benchmark: the first page of the action log, filtered, with counts, over a million rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/anything .venv/bin/python bench/action_log_listing.py

PostgreSQL only (SQLite is refused: the point is the production database). The script works in its own
database (BENCH_DATABASE, default `inv_bench`, on the server DATABASE_URL names), creates and migrates
it, fills the action log once (kept between runs; `--reset` refills it), runs ANALYZE, then times
`--requests` GETs of each scenario through the real API view (Django's test client, token auth, the
whole middleware stack) and prints p50/p95/max in ms. Target: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from urllib.parse import urlencode

from health_sweep import ROOT, bench_database_url  # noqa: E402  (the benchmarks' shared database set-up)

TARGET_P95_MS = 50.0
WARMUP_REQUESTS = 20
INSTANCES = 5_000
DAYS = 30
# Weighted like a real log: most steps succeed, the orchestrator writes most of them.
STATUS_WEIGHTS = [("success", 0.90), ("failed", 0.08), ("in_progress", 0.02)]
COMPONENT_WEIGHTS = [("orchestrator", 0.50), ("worker", 0.25), ("api", 0.15), ("router", 0.05), ("autoscaler", 0.05)]
ACTION_TYPES = [
    "REQUEST_CREATE", "EXECUTE_CREATE", "PROVIDER_CREATE", "PERSIST_PROVIDER_ID", "PROVIDER_START",
    "PROVIDER_GET_IP", "INSTANCE_CREATED", "WORKER_REGISTERED", "WORKER_VLLM_HTTP_OK", "WORKER_MODEL_LOADED",
    "HEALTH_CHECK", "INSTANCE_READY", "INSTANCE_STARTUP_FAILED", "HEARTBEAT_LOST", "REQUEUE_PROVISION",
    "REQUEST_DRAIN", "DRAIN_COMPLETE", "REQUEST_TERMINATE", "EXECUTE_TERMINATE", "PROVIDER_TERMINATE",
    "TERMINATION_PENDING", "TERMINATOR_RETRY", "TERMINATION_CONFIRMED", "INSTANCE_TERMINATED",
    "PROVIDER_DELETED_DETECTED", "ORPHAN_DETECTED", "ORPHAN_TERMINATED", "ARCHIVE_INSTANCE",
    "REQUEST_REINSTALL", "SCALE_DECISION",
]


def weighted_case(column_expr: str, weights: list[tuple[str, float]]) -> str:
    """A SQL CASE picking a value by cumulative weight from a uniform random number in `column_expr`."""
    parts, cumulative = [], 0.0
    for value, weight in weights[:-1]:
        cumulative += weight
        parts.append(f"WHEN {column_expr} < {cumulative:.4f} THEN '{value}'")
    return f"CASE {' '.join(parts)} ELSE '{weights[-1][0]}' END"


# One INSERT ... SELECT over generate_series: the server makes the rows, nothing crosses the wire.
# HEALTH_CHECK is three times as frequent as the other types, as sweeps make it so.
FILL_SQL = f"""
INSERT INTO monitoring_actionlog (
    action_type, component, status, error_code, error_message, instance_id, duration_ms, created_at,
    completed_at, metadata, instance_status_before, instance_status_after
)
SELECT
    CASE WHEN r.t < 0.1 THEN 'HEALTH_CHECK'
         ELSE (%(types)s::text[])[1 + floor(r.t2 * {len(ACTION_TYPES)})::int] END,
    {weighted_case("r.c", COMPONENT_WEIGHTS)},
    {weighted_case("r.s", STATUS_WEIGHTS)},
    CASE WHEN r.s >= 0.90 AND r.s < 0.98 THEN 'PROVIDER_CREATE_FAILED' ELSE '' END,
    CASE WHEN r.s >= 0.90 AND r.s < 0.98 THEN 'simulated failure' ELSE '' END,
    CASE WHEN r.i < 0.95 THEN md5('instance-' || floor(power(r.i2, 1.5) * {INSTANCES})::int)::uuid END,
    floor(power(r.d, 3) * 30000)::int,
    now() - make_interval(secs => r.a * {DAYS} * 86400),
    now() - make_interval(secs => r.a * {DAYS} * 86400) + interval '1 second',
    '{{}}'::jsonb, '', ''
FROM (
    SELECT random() AS t, random() AS t2, random() AS c, random() AS s, random() AS i, random() AS i2,
           random() AS d, random() AS a
    FROM generate_series(1, %(rows)s)
) AS r
"""

SCENARIOS: list[tuple[str, dict]] = [
    ("no filter (Monitoring page default)", {}),
    ("one instance", {"instance": "{instance}"}),
    ("component=orchestrator & status=failed", {"component": "orchestrator", "status": "failed"}),
    ("2 action types, last 24 h", {"action_type": "PROVIDER_CREATE,PROVIDER_START", "created_after": "{day_ago}"}),
    ("component=worker, last 7 days", {"component": "worker", "created_after": "{week_ago}"}),
    ("status=in_progress", {"status": "in_progress"}),
    # 90% of the table: counted from the planner's estimate, flagged.
    ("status=success", {"status": "success"}),
]


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    # Django's test client calls itself "testserver".
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventiv.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fill(rows: int, *, reset: bool) -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("loaddata", "catalog", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM monitoring_actionlog")
        present = cursor.fetchone()[0]
        if present == rows and not reset:
            print(f"action log already holds {present:,} rows (use --reset to refill)")
        else:
            started = time.perf_counter()
            cursor.execute("TRUNCATE monitoring_actionlog RESTART IDENTITY CASCADE")
            cursor.execute(FILL_SQL, {"types": ACTION_TYPES, "rows": rows})
            print(f"inserted {rows:,} rows in {time.perf_counter() - started:.1f} s")
    # VACUUM cannot run in a transaction block; Django's connection is in autocommit mode here.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE monitoring_actionlog")
    print(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


def api_client():
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken
    from rest_framework.test import APIClient

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    _, token = AuthToken.objects.create(user, expiry=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def scenario_values() -> dict[str, str]:
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from monitoring.models import ActionLog

    now = timezone.now()
    # A busy instance, as someone opening a long-lived machine's log would.
    busiest = (
        ActionLog.objects.filter(instance_id__isnull=False).values("instance_id")
        .annotate(rows=Count("*")).order_by("-rows").first()
    )
    return {
        "instance": str(busiest["instance_id"]),
        "day_ago": (now - timedelta(days=1)).isoformat(),
        "week_ago": (now - timedelta(days=7)).isoformat(),
    }


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(requests: int) -> bool:
    client, values = api_client(), scenario_values()
    all_samples: list[float] = []
    print(f"\n{'scenario':42} {'matching':>10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, params in SCENARIOS:
        query = urlencode({**{k: v.format(**values) for k, v in params.items()}, "stats": 1, "limit": 50})
        url = f"/api/action-logs/?{query}"
        for _ in range(WARMUP_REQUESTS):
            response = client.get(url)
            assert response.status_code == 200, response.content[:500]
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        stats = response.json()["stats"]
        matching = f"{stats['filtered']:,}{'~' if stats['filtered_estimated'] else ''}"
        print(f"{name:42} {matching:>10} {statistics.median(samples):8.1f} {percentile(samples, 0.95):8.1f} "
              f"{max(samples):8.1f}")
        all_samples += samples
    p50, p95 = statistics.median(all_samples), percentile(all_samples, 0.95)
    print(f"{'all ' + str(len(all_samples)) + ' requests':42} {'':>10} {p50:8.1f} {p95:8.1f} {max(all_samples):8.1f}")
    print(f"target p95 < {TARGET_P95_MS:.0f} ms: {'met' if p95 < TARGET_P95_MS else 'NOT met'}  (~ = estimated)")
    return p95 < TARGET_P95_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--reset", action="store_true", help="refill the action log even if it has --rows rows")
    args = parser.parse_args()
    setup_django(bench_database_url("inv_bench"))
    fill(args.rows, reset=args.reset)
    return 0 if run(args.requests) else 1


if __name__ == "__main__":
    sys.exit(main())
