"""Claims: which worker acts on an instance now.

A worker acting on an instance first claims it (`claimed_until`), so a task and a sweep, or two sweeps,
never work on the same instance at once; a claim expires on its own if its worker dies. A sweep claims its
rows in batches (`select_for_update(skip_locked=True)` in a short transaction that sets `claimed_until`),
works on them with no lock held, and releases them: several workers may run the same sweep side by side.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from instances.models import Instance

# Longest a health check or a termination step may hold an instance before another worker may take over.
STEP_LEASE_S = 120
# Small enough that workers running the same sweep share the work, large enough to keep claims cheap.
SWEEP_BATCH = 100
# Longer than a batch takes to work through; a sweep killed mid-batch frees its rows after this.
SWEEP_LEASE_S = 120
# A sweep claims no new batch after this long, so it ends before the next tick (every 10 s) is due.
SWEEP_BUDGET_S = 8
# What a worker loads with each instance it claims: the adapters and the machine's spec need them.
RELATED = ("provider", "zone", "instance_type", "model")


def unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)


@contextmanager
def claimed(instance_id, *, statuses: frozenset[str], lease_s: float, progress: bool = False,
            also: dict | None = None) -> Iterator[Instance | None]:
    """Claim one instance in `statuses` for `lease_s` seconds; yield it (None when another worker holds
    it, or it is in another status, or gone) and release it afterwards, unless the work let go of it in
    one of its own writes (a move to ready does: one query less on the hot path). `also`: more fields the
    claim's update sets."""
    now = timezone.now()
    until = now + timedelta(seconds=lease_s)
    update = {"claimed_until": until, **({"progress_at": now} if progress else {}), **(also or {})}
    if not Instance.objects.filter(unclaimed(now), pk=instance_id, status__in=statuses).update(**update):
        yield None
        return
    instance = None
    try:
        instance = Instance.objects.select_related(*RELATED).get(pk=instance_id)
        yield instance
    finally:
        if instance is None or instance.claimed_until == until:
            release_claims([instance_id], until=until)


def release_claims(instance_ids, *, until: datetime) -> None:
    # Only our own claim: a row another worker claimed since (ours expired) keeps its claim.
    Instance.objects.filter(pk__in=instance_ids, claimed_until=until).update(claimed_until=None)


def claimed_batches(queryset: QuerySet[Instance], *, batch: int = SWEEP_BATCH,
                    lease_s: float = SWEEP_LEASE_S) -> Iterator[list[Instance]]:
    """Claim the rows of `queryset` a batch at a time, yield each batch, and release it afterwards."""
    started = time.monotonic()
    cursor = None
    while time.monotonic() - started < SWEEP_BUDGET_S:
        now = timezone.now()
        until = now + timedelta(seconds=lease_s)
        with transaction.atomic():
            rows = queryset.filter(unclaimed(now)).order_by("pk")
            if cursor is not None:
                rows = rows.filter(pk__gt=cursor)
            ids = list(rows.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch])
            if not ids:
                return
            Instance.objects.filter(pk__in=ids).update(claimed_until=until)
        cursor = ids[-1]
        try:
            yield list(Instance.objects.select_related(*RELATED).filter(pk__in=ids).order_by("pk"))
        finally:
            release_claims(ids, until=until)
