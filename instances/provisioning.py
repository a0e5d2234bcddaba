"""Provisioning: create, start and first-check the server of a `provisioning` instance.

The provision task runs after the request commits. Every step writes an action-log row, and the run is
safe to repeat after a crash at any line: the provider server id is committed right after creation, and a
re-run finds the server again by its instance tag instead of creating a second one. A provision with no
progress is re-queued by the sweep (sweeps.py), a few times, then failed.

The hot path is kept short (a test bounds its queries; bench/provision.py measures it): the steps' rows are
held and written with the move to booting, and a machine that is up already is made ready in the same
unit of work (one locked read, one update, one insert, one commit).
"""

from __future__ import annotations

from celery import shared_task
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from catalog.runtime_settings import get_setting
from instances import health
from instances.adapters import adapter_for, address_fields, server_spec
from instances.claims import claimed
from instances.credentials import MintedCredentials, mint_credentials
from instances.health import Verdict
from instances.lifecycle import Move, UnitOfWork
from instances.models import Instance
from instances.readiness import apply_startup_verdict, mark_ready, server_evidence
from instances.retries import ProviderTask, describe_details, remember_provider_error
from instances.status import GONE, PROVISIONABLE, ErrorCode, Status
from instances.termination import fail_instance, terminate_instance
from monitoring.models import ActionLog
from monitoring.services import Component, action_step, held_actions, record_action, write_actions
from providers.base import CloudProvider, ProviderError, ServerInfo

ORCH = Component.ORCHESTRATOR
# Codes a create error keeps as the instance's error code; any other permanent create error is reported
# as PROVIDER_CREATE_FAILED.
CREATE_ERROR_CODES = frozenset(
    {ErrorCode.PROVIDER_OUT_OF_STOCK, ErrorCode.PROVIDER_QUOTA_EXCEEDED, ErrorCode.MISSING_PROVIDER_CREDENTIALS,
     ErrorCode.MISSING_CONTROL_PLANE_CIDRS, ErrorCode.MISSING_MACHINE_SECRET, ErrorCode.INCOMPATIBLE_MODEL_INSTANCE}
)
HINTS = {
    ErrorCode.PROVIDER_OUT_OF_STOCK: "try another zone or instance type",
    ErrorCode.PROVIDER_QUOTA_EXCEEDED: "raise the quota at the provider, or terminate other machines",
    ErrorCode.MISSING_PROVIDER_CREDENTIALS: "configure the provider's credentials",
    ErrorCode.MISSING_CONTROL_PLANE_CIDRS: "set INVENTIV_CONTROL_PLANE_CIDRS to the control plane's addresses",
    ErrorCode.MISSING_MACHINE_SECRET: "set it in Settings, Runtime settings, or in the environment",
}


def provision_instance(instance_id) -> None:
    """Create, start and first-check the server of a `provisioning` instance.

    Safe to run again at any point: an instance past `provisioning` or claimed by another worker is left
    alone, and one whose server id is already stored resumes after the create. Permanent provider errors
    fail the instance; transient ones propagate (the task retries them).
    """
    # Credentials for the server this run may create are minted first and stored with the claim (one write,
    # committed before the server exists, so a machine never holds a token Inventiv does not know). An
    # instance whose server id is stored keeps the ones that server has.
    credentials = mint_credentials()
    minted = {name: Case(When(provider_server_id="", then=Value(value)), default=F(name),
                         output_field=Instance._meta.get_field(name))
              for name, value in credentials.stored_fields().items()}
    with claimed(instance_id, statuses=PROVISIONABLE, lease_s=get_setting("provision_requeue_after_s"),
                 progress=True, also={**minted, "provision_attempts": F("provision_attempts") + 1}) as instance:
        if instance is not None:
            _provision(instance, credentials)


@shared_task(base=ProviderTask)
def provision_instance_task(instance_id: str) -> None:
    provision_instance(instance_id)


def _provision(instance: Instance, credentials: MintedCredentials) -> None:
    execute = record_action(
        "EXECUTE_CREATE", component=ORCH, instance_id=instance.pk, status_before=instance.status,
        metadata={"requeues": instance.requeue_count, "resumed": bool(instance.provider_server_id)},
    )
    verb = "create"
    # The steps' rows are written with the move to booting (one insert, one commit for them all), or at
    # once when the run stops before it. A worker killed in between loses them, not the server: its id is
    # committed as soon as it exists.
    with held_actions() as held:
        try:
            adapter = adapter_for(instance.provider)
            adapter.check_available()
            if not instance.provider_server_id:
                if not _create_server(instance, adapter, credentials, parent=execute, held=held):
                    return
            verb = "start"
            server = _start_server(instance, adapter, parent=execute, held=held)
        except ProviderError as exc:
            remember_provider_error(instance.pk, exc, during=verb)
            if not exc.permanent:
                raise  # the task retries (after Retry-After, when the provider said); the error stays shown
            default = ErrorCode.PROVIDER_CREATE_FAILED if verb == "create" else ErrorCode.PROVIDER_START_FAILED
            code = exc.code if verb == "create" and exc.code in CREATE_ERROR_CODES else default
            hint = HINTS.get(code)
            details = describe_details(exc.details)
            message = (f"{instance.provider.code} could not {verb} a {instance.instance_type.code} server in "
                       f"{instance.zone.code}: {exc.message}" + (f" [{details}]" if details else "")
                       + (f" ({hint})." if hint else ""))
            fail_instance(instance, to=Status.PROVISIONING_FAILED, code=code, message=message,
                          action_type="EXECUTE_CREATE", steps=held)
            return
        if server is None:
            fail_instance(instance, to=Status.PROVISIONING_FAILED, code=ErrorCode.PROVIDER_DELETED,
                          message="The server disappeared at the provider right after it was started.",
                          action_type="PROVIDER_DELETED_DETECTED", steps=held)
            return
        booted, ready = _boot(instance, server, held)
    if booted and not ready:
        apply_startup_verdict(instance, server, adapter=adapter)


def _boot(instance: Instance, server: ServerInfo, held: list[ActionLog]) -> tuple[bool, bool]:
    """Move the instance to booting with the steps that led there, and on to ready when the machine is up
    already (the first health check runs now, not at the next sweep). (booted, ready)."""
    now = timezone.now()
    agent = health.runs_worker_agent(instance)
    booting = {**address_fields(server), "progress_at": now, "last_provider_error": {},
               "startup_deadline_at": health.startup_deadline(instance, now=now)}
    with UnitOfWork(instance, steps=held) as work:
        booted = work.move(Move(Status.BOOTING, "INSTANCE_CREATED", allowed_from=PROVISIONABLE, fields=booting))
        up = booted and health.startup_verdict(work.instance, server, now=now, agent=agent) is Verdict.READY
        ready = up and mark_ready(work, server_evidence(server))
    return booted, ready


def _create_server(instance: Instance, adapter: CloudProvider, credentials: MintedCredentials, *, parent,
                   held: list[ActionLog]) -> bool:
    """Create the server and commit its id at once. False when the instance ended meanwhile."""
    # Only a run after the first may find a server an earlier one created: the first need not look for one.
    may_exist = instance.provision_attempts > 1
    with action_step("PROVIDER_CREATE", component=ORCH, instance_id=instance.pk,
                     instance_status=instance.status, parent=parent, into=held) as row:
        server = adapter.create_server(server_spec(instance, credentials, may_exist=may_exist))
        row.response_payload = {"server_id": server.server_id, "state": server.state.value}
    with action_step("PERSIST_PROVIDER_ID", component=ORCH, instance_id=instance.pk,
                     instance_status=instance.status, parent=parent, into=held) as row:
        now = timezone.now()
        persisted = {"provider_server_id": server.server_id, "provider_created_at": server.created_at or now,
                     "progress_at": now}
        row.metadata = {"server_id": server.server_id}
        still_provisioning = Instance.objects.filter(pk=instance.pk, status=Status.PROVISIONING).update(**persisted)
        if not still_provisioning:
            Instance.objects.filter(pk=instance.pk).update(**persisted)
    instance.provider_server_id = server.server_id
    if still_provisioning:
        return True
    # The instance ended (terminated, or failed by the re-queue sweep) while its server was being created:
    # the server must not outlive it.
    write_actions(held)
    status, error_code = Instance.objects.filter(pk=instance.pk).values_list("status", "error_code").get()
    if status in GONE:
        with action_step("PROVIDER_TERMINATE", component=ORCH, instance_id=instance.pk, instance_status=status,
                         parent=parent,
                         metadata={"reason": f"instance already {status}"}):
            adapter.terminate_server(server.server_id, zone=instance.zone.code)
    else:
        terminate_instance(instance, reason=error_code or "ended during creation")
    return False


def _start_server(instance: Instance, adapter: CloudProvider, *, parent, held: list[ActionLog]) -> ServerInfo | None:
    """Power the server on and read its address (None when the provider no longer knows it)."""
    zone = instance.zone.code
    with action_step("PROVIDER_START", component=ORCH, instance_id=instance.pk,
                     instance_status=instance.status, parent=parent, into=held):
        started = adapter.start_server(instance.provider_server_id, zone=zone)
    with action_step("PROVIDER_GET_IP", component=ORCH, instance_id=instance.pk,
                     instance_status=instance.status, parent=parent, into=held) as row:
        if started is not None and started.public_ip:
            # The power-on's answer carried the address: no second call for it.
            server = started
            row.metadata = {"from": "power-on answer"}
        else:
            server = adapter.get_server(instance.provider_server_id, zone=zone)
        row.response_payload = {"public_ip": server.public_ip if server else None,
                                "state": server.state.value if server else "gone"}
    return server


def requeue_provision(instance: Instance, *, max_requeues: int) -> bool:
    """Enqueue a provision that made no progress again, or fail it once it was re-queued `max_requeues`
    times. True when re-queued."""
    if instance.requeue_count >= max_requeues:
        code = ErrorCode.PROVIDER_START_FAILED if instance.provider_server_id else ErrorCode.PROVIDER_CREATE_FAILED
        fail_instance(instance, to=Status.PROVISIONING_FAILED, code=code, action_type="REQUEUE_PROVISION",
                      allowed_from=PROVISIONABLE,
                      message=f"Provisioning made no progress after {instance.requeue_count} re-queues.")
        return False
    with transaction.atomic():
        changed = Instance.objects.filter(pk=instance.pk, status=Status.PROVISIONING).update(
            requeue_count=F("requeue_count") + 1, progress_at=timezone.now(), claimed_until=None
        )
        if changed:
            record_action("REQUEUE_PROVISION", component=ORCH, instance_id=instance.pk, status_before=instance.status,
                          metadata={"requeue": instance.requeue_count + 1, "max_requeues": max_requeues})
            provision_instance_task.delay_on_commit(str(instance.pk))
    return bool(changed)
