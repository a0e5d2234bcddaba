"""The autoscaler: each tick, read a pool's signals, ask the policy for a size, and apply it.

`autoscale_pool` claims one pool (two workers never decide for one pool at once), builds the policy's
signals from the members' latest heartbeats and the requests the router holds, calls the pure
`policy.decide`, and applies the answer:
- grow through the normal provisioning path (`instances.requests.request_instance`), trying the pool's
  (instance type, zone) choices in order and skipping one that recently ran out of stock or quota;
- shrink by cancelling members still starting first, then draining the least busy ready ones (they are
  terminated when their in-flight work is done or the pool's drain timeout passes);
- members that failed or lost their heartbeat leave the pool's size, so the next decision replaces them.
Every tick leaves a PoolSample (the Pools page's history, with each tick's reason); a tick whose desired
size differs from the last one, or that acts on a member, writes a SCALE_DECISION action-log row with its
inputs and reason.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from autoscaling.models import Pool, PoolChoice, PoolSample
from autoscaling.policy import Decision, PolicySettings, PolicyState, Signals, decide
from autoscaling.selectors import PoolLoad, pool_load
from instances import draining
from instances.requests import request_instance
from instances.termination import terminate_instance
from instances.models import Instance
from instances.status import ErrorCode, Status
from monitoring.services import Component, record_action

log = logging.getLogger(__name__)

AUTOSCALER = Component.AUTOSCALER
# Longest one tick may hold a pool before another worker may decide for it.
POOL_LEASE_S = 60
# A choice whose provider ran out of stock or quota is skipped this long before it is tried again.
CHOICE_BACKOFF_S = 300
OUT_OF_CAPACITY = frozenset({ErrorCode.PROVIDER_OUT_OF_STOCK, ErrorCode.PROVIDER_QUOTA_EXCEEDED})
# Members that left the pool because they broke: the next scale up replaces them.
LOST = frozenset({ErrorCode.HEARTBEAT_LOST, ErrorCode.STARTUP_TIMEOUT, ErrorCode.MODEL_LOAD_FAILED,
                  ErrorCode.HEALTH_CHECK_FAILED, ErrorCode.WORKER_INSTALL_FAILED, ErrorCode.PROVIDER_DELETED})
SAMPLE_RETENTION = timedelta(days=7)


def policy_settings(pool: Pool) -> PolicySettings:
    """The policy's settings for `pool`: its scale-up window is the policy's panic window, its scale-down
    window the stable window (and the cooldown between a change and the next scale down)."""
    return PolicySettings(
        min_size=pool.min_size,
        max_size=pool.max_size,
        target_in_flight_per_instance=pool.target_in_flight,
        ttft_p95_objective_s=pool.ttft_p95_objective_s,
        panic_window_s=float(min(pool.scale_up_window_s, pool.scale_down_window_s)),
        stable_window_s=float(pool.scale_down_window_s),
        scale_down_cooldown_s=float(pool.scale_down_window_s),
        scale_to_zero=pool.scale_to_zero,
        idle_period_s=float(pool.idle_period_s),
    )


# --- Ticks ----------------------------------------------------------------------------------


def autoscale_pools(*, now: datetime | None = None) -> int:
    """One beat tick over every enabled pool; returns how many pools were decided for."""
    decided = 0
    for pool_id in Pool.objects.filter(enabled=True).values_list("pk", flat=True):
        try:
            decided += autoscale_pool(pool_id, now=now) is not None
        except Exception:  # one broken pool must not keep the others at the wrong size
            log.exception("autoscaling pool %s failed", pool_id)
    return decided


def autoscale_pool(pool_id, *, now: datetime | None = None) -> Decision | None:
    """Decide for one pool and apply it. None when the pool is gone, disabled or another worker has it."""
    now = now or timezone.now()
    until = now + timedelta(seconds=POOL_LEASE_S)
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    if not Pool.objects.filter(free, pk=pool_id, enabled=True).update(claimed_until=until):
        return None
    try:
        pool = Pool.objects.select_related("model").get(pk=pool_id)
        return tick_pool(pool, now=now)
    finally:
        # Only our own claim: one taken over after ours expired stays.
        Pool.objects.filter(pk=pool_id, claimed_until=until).update(claimed_until=None)


def tick_pool(pool: Pool, *, now: datetime) -> Decision:
    load = pool_load(pool, now=now)
    signals = Signals(
        now=now.timestamp(), ready=len(load.ready), starting=len(load.starting), in_flight=load.in_flight,
        waiting=load.waiting, ttft_p95_s=load.ttft_p95_s, held_requests=load.held, kv_cache_usage=load.kv_cache_usage,
    )
    decision = decide(policy_settings(pool), signals, PolicyState.from_json(pool.policy_state))
    reason = decision.reason
    actions: list[dict] = []
    if decision.desired_size > load.size:
        lost = _lost_members(pool, since=pool.last_decision_at)
        if lost:
            reason = f"replace {len(lost)} lost ({', '.join(sorted(set(lost)))}); {reason}"
        actions = _grow(pool, decision.desired_size - load.size, reason=reason, now=now)
    elif decision.desired_size < load.size:
        actions = _shrink(pool, load, load.size - decision.desired_size, reason=reason)

    changed = decision.desired_size != pool.desired_size
    Pool.objects.filter(pk=pool.pk).update(
        desired_size=decision.desired_size, last_reason=reason[:300], last_decision_at=now,
        policy_state=decision.state.to_json(),
    )
    PoolSample.objects.create(
        pool=pool, at=now, ready=len(load.ready), starting=len(load.starting), draining=len(load.draining),
        desired=decision.desired_size, in_flight=load.in_flight, waiting=load.waiting, held=load.held,
        ttft_p95_s=load.ttft_p95_s, kv_cache_usage=load.kv_cache_usage, reason=reason[:300],
    )
    PoolSample.objects.filter(pool=pool, at__lt=now - SAMPLE_RETENTION).delete()
    if actions or changed or pool.last_decision_at is None:
        record_action(
            "SCALE_DECISION", component=AUTOSCALER,
            metadata={"pool": pool.name, "pool_id": pool.pk, "size": load.size, "desired": decision.desired_size,
                      "reason": reason, "inputs": asdict(signals), "actions": actions},
        )
    pool.desired_size, pool.last_reason, pool.last_decision_at = decision.desired_size, reason[:300], now
    return decision


# --- Growing --------------------------------------------------------------------------------


def _grow(pool: Pool, count: int, *, reason: str, now: datetime) -> list[dict]:
    """Request `count` machines, each on the first choice that is not out of capacity."""
    choices = list(pool.choices.select_related("instance_type__provider", "zone"))
    blocked = _exhausted_choices(pool, since=now - timedelta(seconds=CHOICE_BACKOFF_S))
    actions: list[dict] = []
    for _ in range(count):
        for choice in choices:
            key = (choice.instance_type_id, choice.zone_id)
            if key in blocked:
                continue
            instance = request_instance(
                provider=choice.instance_type.provider.code, zone=choice.zone.code,
                instance_type=choice.instance_type.code, model=pool.model.code, pool_id=pool.pk,
            )
            action = {"action": "request", "instance": str(instance.pk), "choice": _label(choice)}
            if instance.status in (Status.PROVISIONING_FAILED, Status.FAILED):
                # Refused at once (eager provisioning, or a request the catalog no longer allows): next choice.
                actions.append({**action, "error_code": instance.error_code})
                blocked.add(key)
                continue
            actions.append(action)
            break
        else:
            log.warning("pool %s: no choice left to grow on (%s)", pool.name, reason)
            actions.append({"action": "no_choice_left"})
            break
    return actions


def _exhausted_choices(pool: Pool, *, since: datetime) -> set[tuple[int, int]]:
    """(type, zone) choices on which one of the pool's recent requests ran out of stock or quota."""
    return set(
        Instance.objects.filter(pool=pool, error_code__in=OUT_OF_CAPACITY, created_at__gte=since)
        .values_list("instance_type_id", "zone_id")
    )


def _lost_members(pool: Pool, *, since: datetime | None) -> list[str]:
    rows = Instance.objects.filter(pool=pool, error_code__in=LOST)
    if since is not None:
        rows = rows.filter(failed_at__gte=since)
    return list(rows.values_list("error_code", flat=True)[:20])


def _label(choice: PoolChoice) -> str:
    return f"{choice.instance_type.code} in {choice.zone.code}"


# --- Shrinking ------------------------------------------------------------------------------


def _shrink(pool: Pool, load: PoolLoad, count: int, *, reason: str) -> list[dict]:
    """Remove `count` members: those still starting first (no work on them yet, newest first), then the
    ready ones carrying the least work, which are drained rather than cut off."""
    positions = {(c.instance_type_id, c.zone_id): c.position for c in pool.choices.all()}
    starting = sorted(load.starting, key=lambda m: m.created_at, reverse=True)

    def usefulness(member: Instance):
        worker = load.workers.get(member.pk)
        busy = worker.in_flight if worker is not None else 0
        # Least busy first; then the least preferred choice; then the most recent.
        return (busy, -positions.get((member.instance_type_id, member.zone_id), 0), -member.created_at.timestamp())

    ready = sorted(load.ready, key=usefulness)
    actions: list[dict] = []
    for member in (starting + ready)[:count]:
        why = f"scale down: {reason}"
        if member.status == Status.READY:
            try:
                draining.drain_instance(member, reason=why[:200], timeout_s=pool.drain_timeout_s, component=AUTOSCALER)
            except draining.DrainRefused:
                continue  # it left `ready` since it was read (failed, or an operator acted)
            actions.append({"action": "drain", "instance": str(member.pk)})
        else:
            terminate_instance(member, reason=why[:200])
            actions.append({"action": "cancel", "instance": str(member.pk)})
    return actions
