"""Whether a machine's worker agent speaks: a worker silent for longer than heartbeat_interval_s x
heartbeat_stale_missed is stale, and the router skips it (lost_workers.py fails it after a longer grace)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from catalog.runtime_settings import get_setting
from instances.models import Instance
from monitoring.models import WorkerState


def stale_after_s() -> float:
    """A worker silent for longer than this is stale: the router skips it."""
    return get_setting("heartbeat_interval_s") * get_setting("heartbeat_stale_missed")


def within(moment: datetime | None, seconds: float, now: datetime) -> bool:
    """Whether `moment` is at most `seconds` before `now` (False when there is none)."""
    return moment is not None and now - moment <= timedelta(seconds=seconds)


def is_worker_fresh(instance_id, *, now: datetime | None = None) -> bool:
    """Whether the instance's worker sent a heartbeat within the stale window."""
    last = WorkerState.objects.filter(instance_id=instance_id).values_list("last_heartbeat_at", flat=True).first()
    return within(last, stale_after_s(), now or timezone.now())


def with_fresh_worker(queryset: QuerySet[Instance], *, now: datetime | None = None) -> QuerySet[Instance]:
    """`queryset` narrowed to instances whose worker is fresh (for the router's table)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=stale_after_s())
    return queryset.filter(
        pk__in=WorkerState.objects.filter(last_heartbeat_at__gte=cutoff).values("instance_id")
    )
