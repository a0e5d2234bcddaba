"""Lost workers: a serving machine whose worker agent has been silent for heartbeat_lost_grace_s fails
with HEARTBEAT_LOST and is terminated (a shorter silence only makes it stale for routing, freshness.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from catalog.models import Provider
from catalog.runtime_settings import get_setting
from instances.claims import claimed_batches
from instances.freshness import within
from instances.models import Instance
from instances.status import SERVING, ErrorCode, Status
from instances.termination import fail_instance
from monitoring.models import WorkerState

log = logging.getLogger(__name__)


def running_workers(queryset: QuerySet[Instance]) -> QuerySet[Instance]:
    """`queryset` narrowed to machines that run a worker agent (every cloud but the Mock `none` runtime)."""
    if settings.INVENTIV_MOCK_RUNTIME == "none":
        # A subquery rather than a join: sweeps lock these rows, and PostgreSQL locks no outer-joined side.
        return queryset.exclude(provider_id__in=Provider.objects.filter(adapter=Provider.Adapter.MOCK).values("pk"))
    return queryset


def silent_since(queryset: QuerySet[Instance], cutoff: datetime) -> QuerySet[Instance]:
    """Instances of `queryset` with no heartbeat since `cutoff` (and none in their current status either)."""
    last_beat = Subquery(WorkerState.objects.filter(instance_id=OuterRef("pk")).values("last_heartbeat_at")[:1])
    return queryset.alias(last_beat=last_beat).filter(
        Q(last_beat__lt=cutoff) | Q(last_beat__isnull=True, status_changed_at__lt=cutoff)
    )


def sweep_lost_heartbeats() -> int:
    """Fail ready/draining machines whose worker has been silent for heartbeat_lost_grace_s (HEARTBEAT_LOST).

    Returns how many instances failed. Their servers are terminated by the failure.
    """
    grace_s = get_setting("heartbeat_lost_grace_s")
    cutoff = timezone.now() - timedelta(seconds=grace_s)
    candidates = silent_since(running_workers(Instance.objects.filter(status__in=SERVING)), cutoff)
    failed = 0
    for batch in claimed_batches(candidates):
        for instance in batch:
            try:
                failed += fail_lost_worker(instance, grace_s=grace_s)
            except Exception:  # one broken row must not keep the others from failing over
                log.exception("lost-heartbeat check of %s failed", instance.pk)
    return failed


def fail_lost_worker(instance: Instance, *, grace_s: float, now: datetime | None = None) -> bool:
    """Fail `instance` with HEARTBEAT_LOST unless a heartbeat came since it was picked. True when it failed."""
    now = now or timezone.now()
    last = WorkerState.objects.filter(instance_id=instance.pk).values_list("last_heartbeat_at", flat=True).first()
    silent_from = last or instance.status_changed_at
    if within(silent_from, grace_s, now):
        return False
    fail_instance(
        instance, to=Status.FAILED, code=ErrorCode.HEARTBEAT_LOST, action_type="HEARTBEAT_LOST",
        allowed_from=SERVING,
        message=(f"No heartbeat from the worker for {(now - silent_from).total_seconds():.0f} s "
                 f"(grace {grace_s:g} s)" + ("" if last else "; it never sent one") + "."),
        metadata={"last_heartbeat_at": last.isoformat() if last else None, "grace_s": grace_s},
    )
    # The failure terminates the machine at once, so the instance is already past `failed` here.
    return instance.error_code == ErrorCode.HEARTBEAT_LOST and instance.status not in SERVING
