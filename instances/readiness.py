"""Readiness: how a starting machine becomes ready, or fails trying.

`mark_ready` is the one function that makes an instance ready, whoever saw it serve: the provider (a Mock
machine of the `none` runtime runs nothing, so a running server is all the health there is) or the
machine's worker agent (its heartbeat says the engine serves the expected model, workers.py). Around it:
the health check of a booting/installing/starting machine (the provision's first one, the health sweep's,
a reinstall's), which applies `health.startup_verdict` (a server the provider stopped after its power-on is
powered on once more, then failed as out of stock), and the sweep's safety net that promotes a machine
from its worker's last heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import shared_task
from django.utils import timezone

from instances import health
from instances.adapters import adapter_for, address_fields
from instances.claims import STEP_LEASE_S, claimed
from instances.freshness import stale_after_s, within
from instances.health import Verdict
from instances.lifecycle import InvalidTransition, Move, UnitOfWork, transition
from instances.models import Instance
from instances.retries import ProviderTask
from instances.status import JUST_BOOTED, REINSTALLABLE, STARTUP, ErrorCode, Status
from instances.termination import fail_instance, handle_provider_deleted
from monitoring.models import WorkerState
from monitoring.services import Component, action_step, new_action
from providers.base import CloudProvider, ProviderError, ServerInfo


@dataclass(frozen=True)
class Evidence:
    """What showed that a starting machine serves: the checks that passed (each logged before the move to
    ready, with `metadata`), and who made them."""

    component: str
    checks: tuple[str, ...]
    metadata: Mapping[str, Any]


def server_evidence(server: ServerInfo) -> Evidence:
    """The provider lists the server running (machines without a worker agent)."""
    return Evidence(Component.ORCHESTRATOR, ("HEALTH_CHECK",),
                    {"server_state": server.state.value, "runtime": server.metadata.get("runtime", "")})


def worker_evidence(*, model: str, via: str) -> Evidence:
    """The worker agent reports its engine answering with `model` (`via`: the heartbeat or the health sweep)."""
    return Evidence(Component.WORKER, ("WORKER_VLLM_HTTP_OK", "WORKER_MODEL_LOADED"), {"model": model, "via": via})


def mark_ready(work: UnitOfWork, evidence: Evidence) -> bool:
    """Make the instance of `work` ready: the evidence's checks, then INSTANCE_READY, written with the unit.

    Only from a startup status (a machine that left it meanwhile is left alone, and nothing is logged);
    True when it moved. A ready machine needs no claim: the move lets go of it.
    """
    instance = work.instance
    if instance.status not in STARTUP:
        return False
    for check in evidence.checks:
        work.log(new_action(check, component=evidence.component, instance_id=instance.pk, status_before=instance.status,
                            status_after=instance.status, metadata=dict(evidence.metadata)))
    return work.move(Move(Status.READY, "INSTANCE_READY", component=evidence.component, metadata=evidence.metadata,
                          allowed_from=STARTUP, fields={"claimed_until": None}))


def check_instance_health(instance_id) -> None:
    """Ask the provider about a booting/installing/starting instance and act on the answer."""
    with claimed(instance_id, statuses=STARTUP, lease_s=STEP_LEASE_S) as instance:
        if instance is None:
            return
        adapter = adapter_for(instance.provider)
        server = adapter.get_server(instance.provider_server_id, zone=instance.zone.code)
        apply_startup_verdict(instance, server, adapter=adapter)


@shared_task(base=ProviderTask)
def check_health_task(instance_id: str) -> None:
    check_instance_health(instance_id)


def apply_startup_verdict(instance: Instance, server: ServerInfo | None, *, adapter: CloudProvider) -> Verdict:
    """Move a starting instance on according to its server (`health.startup_verdict`)."""
    agent = health.runs_worker_agent(instance)
    verdict = health.startup_verdict(instance, server, now=timezone.now(), agent=agent)
    # Heartbeats make agent machines ready; this only catches one that came before the server was recorded.
    if agent and verdict in (Verdict.WAIT, Verdict.INSTALLING) and promote_if_worker_ready(instance):
        return Verdict.READY
    if verdict is Verdict.READY:
        with UnitOfWork(instance) as work:
            mark_ready(work, server_evidence(server))
    elif verdict is Verdict.INSTALLING:
        transition(instance, Move(Status.INSTALLING, "HEALTH_CHECK", allowed_from=JUST_BOOTED,
                                  reason="the server runs; its worker agent installs and reports by heartbeat"))
    elif verdict is Verdict.GONE:
        handle_provider_deleted(instance, adapter=adapter, allowed_from=STARTUP)
    elif verdict is Verdict.REPOWER:
        power_on_again(instance, server, adapter=adapter)
    elif verdict is Verdict.OUT_OF_STOCK:
        detail = server.metadata.get("state_detail") or "no detail"
        fail_instance(instance, to=Status.STARTUP_FAILED, code=ErrorCode.PROVIDER_OUT_OF_STOCK,
                      action_type="INSTANCE_STARTUP_FAILED", metadata={"state_detail": detail},
                      message=f"The server fell back to stopped after its power-on, and again after a second one "
                              f"({detail}): {instance.provider.code} has no {instance.instance_type.code} to give in "
                              f"{instance.zone.code} now (a pool moves on to its next choice).")
    elif verdict is Verdict.TIMED_OUT:
        state = server.state.value if server else "gone"
        fail_instance(instance, to=Status.STARTUP_FAILED, code=ErrorCode.STARTUP_TIMEOUT,
                      action_type="INSTANCE_STARTUP_FAILED",
                      message=f"Not ready by the startup deadline ({instance.startup_deadline_at:%Y-%m-%d %H:%M:%S} "
                              f"UTC); the server was {state}.")
    elif server is not None and server.public_ip and not instance.public_ip:
        Instance.objects.filter(pk=instance.pk).update(**address_fields(server))
    return verdict


def power_on_again(instance: Instance, server: ServerInfo, *, adapter: CloudProvider) -> None:
    """Power on once more a server the provider stopped after its power-on (stock ran out under it). A
    second fall back fails the instance (`health.startup_verdict`)."""
    now = timezone.now()
    metadata = {"reason": "the server fell back to stopped after its power-on",
                "state_detail": server.metadata.get("state_detail") or ""}
    try:
        with action_step("PROVIDER_START", component=Component.ORCHESTRATOR, instance_id=instance.pk,
                         instance_status=instance.status,
                         metadata=metadata):
            adapter.start_server(instance.provider_server_id, zone=instance.zone.code)
    except ProviderError as exc:
        if not exc.permanent:
            raise
        code = ErrorCode.PROVIDER_OUT_OF_STOCK if exc.code == ErrorCode.PROVIDER_OUT_OF_STOCK \
            else ErrorCode.PROVIDER_START_FAILED
        fail_instance(instance, to=Status.STARTUP_FAILED, code=code, action_type="INSTANCE_STARTUP_FAILED",
                      message=f"The server fell back to stopped after its power-on; powering it on again failed: "
                              f"{exc.message}")
        return
    Instance.objects.filter(pk=instance.pk).update(power_on_retried_at=now)
    instance.power_on_retried_at = now


def promote_if_worker_ready(instance: Instance, *, now: datetime | None = None) -> bool:
    """The health sweep's safety net: a starting instance whose worker's last (fresh) heartbeat said
    `ready` with the expected model becomes ready. True when it did."""
    state = WorkerState.objects.filter(instance_id=instance.pk).only("status", "model", "last_heartbeat_at").first()
    expected = instance.model.code if instance.model_id else ""
    if state is None or state.status != WorkerState.WorkerStatus.READY or state.model != expected:
        return False
    if not within(state.last_heartbeat_at, stale_after_s(), now or timezone.now()):
        return False
    with UnitOfWork(instance) as work:
        return mark_ready(work, worker_evidence(model=expected, via="health sweep"))


def reinstall_instance(instance: Instance, *, actor=None) -> Instance:
    """Run the startup path again on the same server: `starting` (`installing` where a worker agent
    installs) and a health check on commit. Allowed from ready, startup_failed and failed with a server;
    raises InvalidTransition otherwise."""
    instance.refresh_from_db()
    if instance.status not in REINSTALLABLE or not instance.provider_server_id:
        # Checked first: a rejected request has no server, and may have no provider to ask about its runtime.
        raise InvalidTransition(instance.pk, instance.status, Status.STARTING)
    target = Status.INSTALLING if health.runs_worker_agent(instance) else Status.STARTING
    component = Component.API if actor is not None else Component.ORCHESTRATOR
    deadline = health.startup_deadline(instance, now=timezone.now())
    with UnitOfWork(instance) as work:
        before = work.instance.status
        # Checked under the lock: a request refused here leaves no trace.
        if before in REINSTALLABLE:
            work.log(new_action("REQUEST_REINSTALL", component=component, instance_id=instance.pk, user=actor,
                                status_before=before))
            work.move(Move(target, "EXECUTE_REINSTALL", actor=actor, component=component, allowed_from=REINSTALLABLE,
                           fields={"error_code": "", "error_message": "", "startup_deadline_at": deadline}))
            check_health_task.delay_on_commit(str(instance.pk))
    if before not in REINSTALLABLE:
        raise InvalidTransition(instance.pk, before, target)
    return instance
