"""Reading what the router served (RequestTrace) and how fresh the workers are, for the dashboard and /metrics.

The TTFT percentiles the router's own Models page shows live in router/selectors.py: finops reads the
router, never the other way (README, Architecture).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from instances.models import Instance
from instances.status import Status
from monitoring.models import WorkerState
from router.models import RequestTrace

Outcome = RequestTrace.Outcome
# Requests and tokens per second are averaged over this window.
RATE_WINDOW = timedelta(minutes=1)
# Latency and TTFT distributions for /metrics cover this much recent traffic, in these buckets (seconds).
HISTOGRAM_WINDOW = timedelta(minutes=5)
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TTFT_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
MS_PER_S = 1000


def rates(*, now: datetime) -> dict[str, float]:
    """Requests and tokens (prompt + completion) per second over the last RATE_WINDOW."""
    totals = RequestTrace.objects.filter(created_at__gte=now - RATE_WINDOW, created_at__lt=now).aggregate(
        requests=Count("id"), prompt=Coalesce(Sum("prompt_tokens"), 0), completion=Coalesce(Sum("completion_tokens"), 0)
    )
    window_s = RATE_WINDOW.total_seconds()
    return {"requests_per_second": totals["requests"] / window_s,
            "tokens_per_second": (totals["prompt"] + totals["completion"]) / window_s}


def router_totals() -> list[dict]:
    """Per model and outcome, since the first trace: requests and tokens (what /metrics exposes as counters)."""
    return list(
        RequestTrace.objects.order_by().values("model", "outcome").annotate(
            requests=Count("id"), prompt=Coalesce(Sum("prompt_tokens"), 0),
            completion=Coalesce(Sum("completion_tokens"), 0),
        ).order_by("model", "outcome")
    )


def histogram(field: str, buckets_s: tuple[float, ...], *, now: datetime) -> dict[str, dict]:
    """Per model over HISTOGRAM_WINDOW: cumulative counts at each bucket bound (seconds), count and sum."""
    recent = RequestTrace.objects.filter(created_at__gte=now - HISTOGRAM_WINDOW, created_at__lt=now,
                                         **{f"{field}__isnull": False})
    bounds = {f"le_{i}": Count("id", filter=Q(**{f"{field}__lte": bound * MS_PER_S}))
              for i, bound in enumerate(buckets_s)}
    rows = recent.order_by().values("model").annotate(n=Count("id"), total=Sum(field), **bounds)
    return {
        row["model"]: {
            "buckets": [(bound, row[f"le_{i}"]) for i, bound in enumerate(buckets_s)],
            "count": row["n"], "sum_s": (row["total"] or 0) / MS_PER_S,
        }
        for row in rows
    }


def heartbeat_ages(*, now: datetime) -> list[dict]:
    """Seconds since the last heartbeat of each ready instance that has sent one."""
    ready = dict(Instance.objects.filter(status=Status.READY).values_list("id", "model__code"))
    states = WorkerState.objects.filter(instance_id__in=list(ready), last_heartbeat_at__isnull=False)
    return [
        {"instance_id": str(state.instance_id), "model": ready[state.instance_id] or "",
         "age_s": max(0.0, (now - state.last_heartbeat_at).total_seconds())}
        for state in states.only("instance_id", "last_heartbeat_at")
    ]
