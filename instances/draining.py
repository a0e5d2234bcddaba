"""Draining: stop sending a machine new work, let its in-flight requests finish, then terminate it.

`drain_instance` moves a ready instance to `draining` (REQUEST_DRAIN). From then on the router no longer
picks it (it routes only `ready` instances) and the worker agent is told to drain in its next heartbeat
answer. `finish_drain` ends the drain (DRAIN_COMPLETE, then the normal termination) once the engine
reports no request in flight, or when the drain deadline passes. A heartbeat from a draining machine
with nothing in flight enqueues the check at once; the beat sweep catches the rest (deadlines, machines
without a worker agent).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from catalog.runtime_settings import get_setting
from instances.claims import claimed_batches
from instances.lifecycle import Move, transition
from instances.models import Instance
from instances.status import DRAINABLE, Status
from instances.termination import terminate_instance
from monitoring.models import WorkerState
from monitoring.services import Component, record_action

log = logging.getLogger(__name__)

# A heartbeat counts as proof of an empty engine only if sent this long after the drain began: a request
# the router picked the machine for just before it saw `draining` (its table refreshes every 0.5 s) has
# reached the engine by then.
DRAIN_SETTLE_S = 2.0


class DrainRefused(Exception):
    """The instance is not serving (only a `ready` instance can be drained)."""


def drain_instance(instance: Instance, *, reason: str, timeout_s: float | None = None, actor=None,
                   component: str | None = None) -> Instance:
    """Start draining a `ready` instance; idempotent for one already draining.

    `timeout_s` (default: the runtime setting drain_timeout_s) bounds the wait for in-flight requests.
    Raises DrainRefused for an instance in any other status. The drain may finish at once (a machine with
    no worker agent has nothing to wait for): the returned instance says where it stands.
    """
    if timeout_s is None:
        timeout_s = get_setting("drain_timeout_s")
    component = component or (Component.API if actor is not None else Component.ORCHESTRATOR)
    deadline = timezone.now() + timedelta(seconds=timeout_s)
    # Only a ready instance moves (compare-and-set); any other is returned as it is and refused below.
    fresh, moved = transition(instance, Move(
        Status.DRAINING, "REQUEST_DRAIN", reason=reason, actor=actor, component=component,
        fields={"drain_deadline_at": deadline}, metadata={"timeout_s": timeout_s}, allowed_from=DRAINABLE,
    ))
    if fresh.status != Status.DRAINING:
        raise DrainRefused(f"instance {fresh.pk} is {fresh.status}: only a ready instance can be drained")
    if moved:
        finish_drain_task.delay_on_commit(str(fresh.pk))
    return fresh


def finish_drain(instance_id, *, now: datetime | None = None) -> bool:
    """Terminate a draining instance whose work is done or whose deadline passed. True when it did."""
    now = now or timezone.now()
    instance = Instance.objects.filter(pk=instance_id, status=Status.DRAINING).first()
    if instance is None:
        return False
    verdict = drain_verdict(instance, WorkerState.objects.filter(instance_id=instance.pk).first(), now=now)
    if verdict is None:
        return False
    with transaction.atomic():
        locked = Instance.objects.select_for_update().filter(pk=instance.pk, status=Status.DRAINING).first()
        if locked is None:
            return False  # another worker finished it, or the operator terminated it
        record_action(
            "DRAIN_COMPLETE", component=Component.ORCHESTRATOR, instance_id=locked.pk, status_before=locked.status,
            status_after=Status.TERMINATING if locked.provider_server_id else Status.TERMINATED,
            duration_ms=_ms_since(locked.draining_at, now), metadata=verdict,
        )
        terminate_instance(locked, reason="drained" if not verdict.get("timed_out") else "drain timeout")
    return True


@shared_task
def finish_drain_task(instance_id: str) -> bool:
    return finish_drain(instance_id)


def drain_verdict(instance: Instance, worker: WorkerState | None, *, now: datetime) -> dict | None:
    """Why the drain of `instance` is over (metadata for DRAIN_COMPLETE), or None while it must wait."""
    if worker is None or worker.last_heartbeat_at is None:
        # No worker agent (the Mock `none` runtime, or one that never spoke): nothing can report work.
        return {"in_flight": 0, "timed_out": False, "why": "no worker agent reports work"}
    settled = instance.draining_at is None or worker.last_heartbeat_at >= instance.draining_at + timedelta(
        seconds=DRAIN_SETTLE_S
    )
    if settled and worker.in_flight == 0:
        return {"in_flight": 0, "timed_out": False, "why": "no request in flight"}
    if instance.drain_deadline_at is not None and now >= instance.drain_deadline_at:
        return {"in_flight": worker.in_flight, "timed_out": True, "why": "drain timeout passed"}
    return None


def sweep_drains() -> int:
    """Finish every drain that is due. Returns how many instances were terminated."""
    finished = 0
    for batch in claimed_batches(Instance.objects.filter(status=Status.DRAINING)):
        for instance in batch:
            try:
                finished += finish_drain(instance.pk)
            except Exception:  # one broken row must not keep the other drains from finishing
                log.exception("drain check of %s failed", instance.pk)
    return finished


def _ms_since(start: datetime | None, now: datetime) -> int | None:
    return None if start is None else int((now - start).total_seconds() * 1000)
