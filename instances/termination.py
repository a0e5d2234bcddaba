"""The end of an instance: failure, termination (request, delete, retry, confirm), the provider's own
deletion, and the archive.

A failed instance that has a server is terminated at once (deletion_reason = the error code), so nothing is
paid for silently. A termination request moves the instance to `terminating` and enqueues
`terminate_instance_task` on commit; the task deletes the server and confirms it is gone, and the
terminator sweep (sweeps.py) finishes what the task could not. Provider calls never run inside a
transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from instances.adapters import adapter_for
from instances.claims import STEP_LEASE_S, claimed
from instances.lifecycle import InvalidTransition, Move, UnitOfWork, transition
from instances.models import Instance
from instances.retries import ProviderTask, remember_provider_error
from instances.status import BEING_TERMINATED, TERMINATION_REQUESTED, ErrorCode, Status
from monitoring.models import ActionLog
from monitoring.services import Component, action_step, new_action, record_action
from providers.base import CloudProvider, ProviderError, ServerInfo, ServerState

log = logging.getLogger(__name__)

ORCH = Component.ORCHESTRATOR
# After a terminate that did not take, the terminator leaves the instance alone this long.
TERMINATOR_RETRY_BACKOFF_S = 60
# The longest deletion reason the instance keeps.
MAX_REASON = 200


def fail_instance(instance: Instance, *, to: str, code: str, message: str, action_type: str,
                  allowed_from: frozenset[str] | None = None, metadata: dict | None = None,
                  steps: list[ActionLog] | None = None) -> Instance:
    """Move `instance` to the failed status `to` with an error code, from the status it is in now, or one of
    `allowed_from` (`steps`: held rows of what led to the failure, written first). Then terminate it when it
    has a server."""
    moved = transition(instance, Move(to, action_type, error_code=code, error_message=message,
                                      allowed_from=allowed_from or frozenset({instance.status}),
                                      metadata=metadata or {}), steps=steps)[1]
    if moved and instance.provider_server_id:
        terminate_instance(instance, reason=code)
    return instance


def terminate_instance(instance: Instance, *, reason: str, actor=None) -> Instance:
    """Terminate `instance`. Idempotent: one already terminating or ended is returned as it is.

    Without a provider server it is `terminated` at once; otherwise it goes `terminating` and the
    terminate task deletes the server after the commit.
    """
    component = Component.API if actor is not None else ORCH
    try:
        with UnitOfWork(instance) as work:
            locked = work.instance
            if locked.status in TERMINATION_REQUESTED:
                return instance
            if locked.provider_server_id:
                # The termination takes the instance over: whoever held it (a provision that just failed, a
                # sweep) lets go, so the terminate task can claim it at once.
                work.move(Move(Status.TERMINATING, "REQUEST_TERMINATE", reason=reason, actor=actor,
                               component=component,
                               fields={"deletion_reason": reason[:MAX_REASON], "claimed_until": None}))
                terminate_instance_task.delay_on_commit(str(locked.pk))
            else:
                work.log(new_action("REQUEST_TERMINATE", component=component, instance_id=locked.pk, user=actor,
                                    status_before=locked.status, metadata={"reason": reason}))
                work.move(Move(Status.TERMINATED, "INSTANCE_TERMINATED", reason="no server at the provider",
                               actor=actor, component=component, fields={"deletion_reason": reason[:MAX_REASON]}))
    except Instance.DoesNotExist:
        pass  # nothing left to terminate
    return instance


def execute_termination(instance_id) -> None:
    """Delete the server of a `terminating` instance and confirm it is gone. Safe to run again."""
    with claimed(instance_id, statuses=BEING_TERMINATED, lease_s=STEP_LEASE_S) as instance:
        if instance is None:
            return
        adapter = adapter_for(instance.provider)
        execute = record_action("EXECUTE_TERMINATE", component=ORCH, instance_id=instance.pk,
                                status_before=instance.status, metadata={"reason": instance.deletion_reason})
        try:
            with action_step("PROVIDER_TERMINATE", component=ORCH, instance_id=instance.pk,
                             instance_status=instance.status, parent=execute):
                adapter.terminate_server(instance.provider_server_id, zone=instance.zone.code)
        except ProviderError as exc:
            remember_provider_error(instance.pk, exc, during="terminate")
            if not exc.permanent:
                raise
            return  # logged by the step; the terminator sweep tries again
        confirm_termination(instance, adapter=adapter, parent=execute, log_pending=True)


@shared_task(base=ProviderTask)
def terminate_instance_task(instance_id: str) -> None:
    execute_termination(instance_id)


def retry_termination(instance: Instance, *, server: ServerInfo | None, adapter: CloudProvider) -> None:
    """The terminator sweep's step for an instance still `terminating` some time after the request."""
    if server is not None and server.state == ServerState.STOPPING:
        return  # the deletion is under way at the provider
    if server is None or server.state == ServerState.GONE:
        confirm_termination(instance, adapter=adapter, server=None)
        return
    retry = record_action("TERMINATOR_RETRY", component=ORCH, instance_id=instance.pk,
                          status_before=instance.status, metadata={"server_state": server.state.value})
    # Keep the claim past this sweep: a terminate that did not take is retried after a pause, not every tick.
    Instance.objects.filter(pk=instance.pk).update(
        claimed_until=timezone.now() + timedelta(seconds=TERMINATOR_RETRY_BACKOFF_S)
    )
    with action_step("PROVIDER_TERMINATE", component=ORCH, instance_id=instance.pk,
                     instance_status=instance.status, parent=retry):
        adapter.terminate_server(instance.provider_server_id, zone=instance.zone.code)
    confirm_termination(instance, adapter=adapter, parent=retry)


_UNKNOWN = object()


def confirm_termination(instance: Instance, *, adapter: CloudProvider, parent=None, server=_UNKNOWN,
                        log_pending: bool = False) -> bool:
    """Terminated once the provider no longer lists the server (volumes deleted then). True when done."""
    if server is _UNKNOWN:
        server = adapter.get_server(instance.provider_server_id, zone=instance.zone.code)
    if server is not None and server.state != ServerState.GONE:
        if log_pending:
            record_action("TERMINATION_PENDING", component=ORCH, instance_id=instance.pk, parent=parent,
                          status_before=instance.status, metadata={"server_state": server.state.value})
        return False
    volumes_error = delete_volumes(instance, adapter)
    confirmed = new_action("TERMINATION_CONFIRMED", component=ORCH, instance_id=instance.pk, parent=parent,
                           status_before=instance.status, metadata={"volumes_deleted": volumes_error is None,
                                     **({"volumes_error": volumes_error} if volumes_error else {})})
    transition(instance, Move(Status.TERMINATED, "INSTANCE_TERMINATED", allowed_from=BEING_TERMINATED),
               steps=[confirmed])
    return True


def handle_provider_deleted(instance: Instance, *, adapter: CloudProvider, allowed_from: frozenset[str]) -> bool:
    """The provider no longer knows the server: the instance is terminated (PROVIDER_DELETED)."""
    moved = transition(instance, Move(
        Status.TERMINATED, "PROVIDER_DELETED_DETECTED", allowed_from=allowed_from,
        error_code=ErrorCode.PROVIDER_DELETED, fields={"deletion_reason": ErrorCode.PROVIDER_DELETED},
        error_message=f"Server {instance.provider_server_id} was deleted at {instance.provider.code} outside Inventiv.",
    ))[1]
    if moved:
        delete_volumes(instance, adapter)
    return moved


def delete_volumes(instance: Instance, adapter: CloudProvider) -> str | None:
    """Delete what the server left behind; the error message when that failed for good, else None."""
    try:
        adapter.delete_volumes(instance.provider_server_id, zone=instance.zone.code)
    except ProviderError as exc:
        if not exc.permanent:
            raise
        log.warning("volumes of %s were not deleted: %s", instance.pk, exc)
        return exc.message
    return None


def archive_instance(instance: Instance, *, actor=None) -> Instance:
    """Archive a terminated instance (or a rejected request). Raises InvalidTransition otherwise."""
    instance.refresh_from_db(fields=["status", "provider_server_id"])
    if instance.status == Status.PROVISIONING_FAILED and instance.provider_server_id:
        # Its server may still run: it is terminated first, archived after.
        raise InvalidTransition(instance.pk, instance.status, Status.ARCHIVED)
    transition(instance, Move(Status.ARCHIVED, "ARCHIVE_INSTANCE", actor=actor,
                              component=Component.API if actor is not None else ORCH))
    return instance
