"""Read queries over router usage: the traces listing, counters per model, instance or key, and TTFT
percentiles. Other apps (finops, the dashboard) read the router's traces through these; the router reads
nothing of theirs."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Max, Q, QuerySet, Sum

from instances.models import Instance
from instances.status import Status
from router.models import ApiKey, RequestTrace

Outcome = RequestTrace.Outcome
# The Models page and the dashboard show TTFT p95 over this window.
TTFT_WINDOW = timedelta(hours=1)
P95 = 0.95


def api_keys() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("created_by")


def request_traces(*, model: str | None = None, api_key_id: int | None = None, status_code: int | None = None,
                   outcome: str | None = None, instance_id=None, since: datetime | None = None,
                   until: datetime | None = None) -> QuerySet[RequestTrace]:
    """Traces newest first, narrowed by any of the Traces page's filters."""
    traces = RequestTrace.objects.select_related("api_key")
    filters = {
        "model": model, "api_key_id": api_key_id, "status_code": status_code, "outcome": outcome,
        "instance_id": instance_id, "created_at__gte": since, "created_at__lt": until,
    }
    return traces.filter(**{name: value for name, value in filters.items() if value is not None})


def _usage_by(field: str, *, since: datetime | None, until: datetime | None) -> list[dict]:
    traces = request_traces(since=since, until=until)
    return list(
        traces.order_by().values(field).annotate(
            requests=Count("id"),
            errors=Count("id", filter=~Q(outcome=Outcome.OK)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            avg_latency_ms=Avg("latency_ms"),
            avg_ttft_ms=Avg("ttft_ms"),
            last_request_at=Max("created_at"),
        ).order_by("-requests", field)
    )


def model_usage(*, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    """Per model: requests, errors, tokens, mean latency and TTFT, last request."""
    return _usage_by("model", since=since, until=until)


def instance_usage(*, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    """The same counters per instance (requests that reached one)."""
    return [row for row in _usage_by("instance_id", since=since, until=until) if row["instance_id"] is not None]


def key_usage(*, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    return _usage_by("api_key_id", since=since, until=until)


def nearest_rank(count: int, quantile: float) -> int:
    """The 0-based position of the `quantile` value among `count` sorted values (nearest-rank method)."""
    return max(0, math.ceil(quantile * count) - 1)


def ttft_p95_by_model(*, now: datetime) -> dict[str, float]:
    """TTFT p95 in ms per model over the last TTFT_WINDOW (streams only: others have no TTFT).

    Nearest-rank on each model's sorted values, read one row per model with an offset: portable to
    SQLite, and the window keeps each scan to an hour of one model's traces.
    """
    recent = RequestTrace.objects.filter(created_at__gte=now - TTFT_WINDOW, created_at__lt=now,
                                         ttft_ms__isnull=False)
    counts = recent.order_by().values("model").annotate(n=Count("id"))
    p95 = {}
    for row in counts:
        position = nearest_rank(row["n"], P95)
        p95[row["model"]] = recent.filter(model=row["model"]).order_by("ttft_ms").values_list(
            "ttft_ms", flat=True)[position]
    return dict(sorted(p95.items()))


def served_models(*, now: datetime) -> list[dict]:
    """The Models page: each model that has a ready instance or recent traffic, with its ready instances,
    their GPUs, and requests, errors and TTFT p95 (ms) over the last TTFT_WINDOW."""
    ready = {
        row["model__code"]: row
        for row in Instance.objects.filter(status=Status.READY, model__isnull=False).order_by()
        .values("model__code").annotate(instances=Count("id"), gpus=Sum("instance_type__gpu_count"))
    }
    usage = {row["model"]: row for row in model_usage(since=now - TTFT_WINDOW, until=now)}
    p95 = ttft_p95_by_model(now=now)
    return [
        {
            "model": code,
            "ready_instances": ready.get(code, {}).get("instances", 0),
            "gpus": ready.get(code, {}).get("gpus") or 0,
            "requests": usage.get(code, {}).get("requests", 0),
            "errors": usage.get(code, {}).get("errors", 0),
            "ttft_p95_ms": p95.get(code),
        }
        for code in sorted(set(ready) | set(usage))
    ]


def ready_model_codes() -> list[str]:
    """Codes of the models that at least one ready instance serves (what the Playground can call)."""
    ready = Instance.objects.filter(status=Status.READY, model__isnull=False).order_by("model__code")
    return list(ready.values_list("model__code", flat=True).distinct())
