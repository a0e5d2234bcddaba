"""Requests the router holds for a pool: recorded on the pool, and a pool at rest woken at once.

The router reports through settings.ROUTER_POOL_WAKE (a dotted path, so `router` never imports
`autoscaling`). This module enqueues the autoscaler's task; the task runs `autoscaling.services`, which
never enqueues anything itself, so the arrows run one way: holds -> tasks -> services.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from autoscaling.models import Pool
from autoscaling.selectors import HELD_FRESH_S
from autoscaling.tasks import autoscale_pool_task


def report_held_requests(pool_id: int, held: int) -> None:
    """The router holds `held` requests for the pool. When requests start waiting, the pool is decided for
    at once (after this commits) instead of at the next beat tick; later reports only update the count."""
    now = timezone.now()
    with transaction.atomic():
        pool = Pool.objects.select_for_update().filter(pk=pool_id).only("held_requests", "held_at").first()
        if pool is None:
            return
        was_waiting = pool.held_requests > 0 and pool.held_at is not None and (
            now - pool.held_at <= timedelta(seconds=HELD_FRESH_S)
        )
        Pool.objects.filter(pk=pool_id).update(held_requests=max(0, held), held_at=now)
        if held > 0 and not was_waiting:
            autoscale_pool_task.delay_on_commit(pool_id)
