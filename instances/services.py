"""The instance lifecycle: request, provision, first health check, terminate, archive, reinstall.

Every status change goes through `instances.lifecycle.transition`; every step writes an action-log row.
Provider calls never run inside a database transaction, and every function here is safe to run again
after a crash at any line: the provider server id is committed right after creation, and a re-run
finds the server again by its instance tag instead of creating a second one.

A worker acting on an instance first *claims* it (`claimed_until`), so a task and a sweep, or two
sweeps, never work on the same instance at once; a claim expires on its own if its worker dies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Zone
from catalog.runtime_settings import get_setting
from catalog.services import incompatibility_reason, is_offered
from instances import health
from instances.credentials import ENV_ENGINE_API_KEY, ENV_WORKER_TOKEN, MintedCredentials, mint_credentials
from instances.health import Verdict
from instances.lifecycle import InvalidTransition, transition, write_moves
from instances.models import Instance
from instances.status import GONE, REINSTALLABLE, STARTUP, TERMINATION_REQUESTED, ErrorCode, Status
from monitoring.models import ActionLog
from monitoring.services import (
    Component,
    Outcome,
    action_step,
    held_actions,
    new_action,
    record_action,
    write_actions,
)
from providers.base import (
    INVENTIV_TAG,
    CloudProvider,
    ProviderError,
    ServerInfo,
    ServerSpec,
    ServerState,
    instance_tag,
    server_name,
)
from providers.cloudinit import render_user_data
from providers.registry import get_provider

log = logging.getLogger(__name__)

ORCH = Component.ORCHESTRATOR
# Longest a health check or a termination step may hold an instance before another worker may take over.
STEP_LEASE_S = 120
# After a terminate that did not take, the terminator leaves the instance alone this long.
TERMINATOR_RETRY_BACKOFF_S = 60
# Codes a create error keeps as the instance's error code; any other permanent create error is reported
# as PROVIDER_CREATE_FAILED.
CREATE_ERROR_CODES = frozenset(
    {ErrorCode.PROVIDER_OUT_OF_STOCK, ErrorCode.PROVIDER_QUOTA_EXCEEDED, ErrorCode.MISSING_PROVIDER_CREDENTIALS}
)
HINTS = {
    ErrorCode.PROVIDER_OUT_OF_STOCK: "try another zone or instance type",
    ErrorCode.PROVIDER_QUOTA_EXCEEDED: "raise the quota at the provider, or terminate other machines",
    ErrorCode.MISSING_PROVIDER_CREDENTIALS: "configure the provider's credentials",
}
# Where vLLM and the worker agent listen on a cloud machine (the adapters open these ports).
ENGINE_PORT = 8000
AGENT_PORT = 8081


# --- Requests -------------------------------------------------------------------------------


def request_instance(*, provider: str | None, zone: str | None, instance_type: str | None, model: str | None,
                     actor=None, pool_id=None) -> Instance:
    """Store a request for a machine; provision it on commit when it is valid.

    Every request is kept (REQUEST_CREATE). A rejected one ends `provisioning_failed` with an error code
    and a message for the operator; an accepted one stays `provisioning` and the provision task runs
    after the commit. The caller tells them apart by `status`.
    """
    requested = {"provider": _text(provider), "zone": _text(zone), "instance_type": _text(instance_type),
                 "model": _text(model)}
    if pool_id is not None:
        requested["pool_id"] = str(pool_id)
    found: dict = {}
    rejection = _rejection(requested, found)
    user = actor if getattr(actor, "is_authenticated", False) else None
    now = timezone.now()
    with transaction.atomic():
        if rejection is None:
            instance = Instance.objects.create(
                requested=requested, created_by=user, status=Status.PROVISIONING, progress_at=now, pool_id=pool_id,
                cost_per_hour=found["instance_type"].cost_per_hour, **found,
            )
        else:
            code, message = rejection
            instance = Instance.objects.create(
                requested=requested, created_by=user, status=Status.PROVISIONING_FAILED, error_code=code,
                error_message=message, failed_at=now, pool_id=pool_id, **found,
            )
        record_action(
            "REQUEST_CREATE", component=Component.AUTOSCALER if pool_id is not None else Component.API,
            status=Outcome.SUCCESS if rejection is None else Outcome.FAILED, instance_id=instance.pk, user=user,
            error_code=instance.error_code, error_message=instance.error_message, status_after=instance.status,
            request_payload=requested,
        )
        if rejection is None:
            _enqueue("provision_instance_task", instance.pk)
    if rejection is None:
        # The provision may have run already (eager tasks, a fast worker). It changes no catalog link, so
        # those stay loaded for the caller (an API answer names them).
        instance.refresh_from_db(fields=[f.attname for f in Instance._meta.concrete_fields if not f.is_relation])
    return instance


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _rejection(req: dict[str, str], found: dict) -> tuple[str, str] | None:
    """Why the request cannot be served, as (error code, message), or None. Fills `found` as it goes."""
    missing = [name for name in ("provider", "zone", "instance_type") if not req[name]]
    if missing:
        return (ErrorCode.MISSING_PARAMS,
                f"Missing {', '.join(missing)}: a request names a provider, a zone and an instance type.")
    if not req["model"]:
        return ErrorCode.MISSING_MODEL, "Missing model: name the LLM model the machine will serve."
    rejection = _offer_rejection(req, found)
    if rejection is not None:
        return rejection
    llm = LlmModel.objects.filter(code=req["model"]).first()
    if llm is None or not llm.active:
        return ErrorCode.INVALID_MODEL, f"Model {req['model']!r} is unknown or inactive."
    found["model"] = llm
    reason = incompatibility_reason(llm, found["instance_type"])
    if reason:
        return ErrorCode.INCOMPATIBLE_MODEL_INSTANCE, reason
    return None


def _offer_rejection(req: dict[str, str], found: dict) -> tuple[str, str] | None:
    """Why the provider, zone and instance type asked for cannot be used together, or None.

    One query when they can (every request the API accepts); the reason is looked for step by step only
    when they cannot.
    """
    offer = (
        InstanceTypeZone.objects.select_related("instance_type__provider", "zone__region")
        .filter(instance_type__provider__code=req["provider"], instance_type__code=req["instance_type"],
                zone__region__provider__code=req["provider"], zone__code=req["zone"])
        .first()
    )
    if offer is not None:
        offer_type, zone = offer.instance_type, offer.zone
        if offer_type.provider.active and zone.active and zone.region.active and offer_type.active:
            found.update(provider=offer_type.provider, zone=zone, instance_type=offer_type)
            return None
    provider = Provider.objects.filter(code=req["provider"]).first()
    if provider is None or not provider.active:
        return ErrorCode.INVALID_PROVIDER, f"Provider {req['provider']!r} is unknown or inactive."
    found["provider"] = provider
    zone = Zone.objects.select_related("region").filter(region__provider=provider, code=req["zone"]).first()
    if zone is None:
        return ErrorCode.INVALID_ZONE, f"{provider.code} has no zone {req['zone']!r}."
    found["zone"] = zone
    if not (zone.active and zone.region.active):
        return ErrorCode.INACTIVE_ZONE, f"Zone {zone.code} is inactive: machines cannot be requested there now."
    offer = InstanceType.objects.filter(provider=provider, code=req["instance_type"]).first()
    if offer is None:
        return ErrorCode.INVALID_INSTANCE_TYPE, f"{provider.code} has no instance type {req['instance_type']!r}."
    found["instance_type"] = offer
    if not offer.active:
        return ErrorCode.INACTIVE_INSTANCE_TYPE, f"Instance type {offer.code} is inactive."
    if not is_offered(offer, zone):
        return ErrorCode.INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE, f"{offer.code} is not offered in {zone.code}."
    return None  # an operator enabled the offer between the two reads: it can be used now


# --- Provisioning ---------------------------------------------------------------------------


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
    with claimed(instance_id, statuses={Status.PROVISIONING}, lease_s=get_setting("provision_requeue_after_s"),
                 progress=True, also={**minted, "provision_attempts": F("provision_attempts") + 1}) as instance:
        if instance is not None:
            _provision(instance, credentials)


def _provision(instance: Instance, credentials: MintedCredentials) -> None:
    execute = record_action(
        "EXECUTE_CREATE", component=ORCH, instance_id=instance.pk, status_before=instance.status,
        metadata={"requeues": instance.requeue_count, "resumed": bool(instance.provider_server_id)},
    )
    zone = instance.zone.code
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
            if not exc.permanent:
                raise
            default = ErrorCode.PROVIDER_CREATE_FAILED if verb == "create" else ErrorCode.PROVIDER_START_FAILED
            code = exc.code if verb == "create" and exc.code in CREATE_ERROR_CODES else default
            hint = HINTS.get(code)
            message = (f"{instance.provider.code} could not {verb} a {instance.instance_type.code} server in "
                       f"{zone}: {exc.message}" + (f" ({hint})." if hint else ""))
            fail_instance(instance, to=Status.PROVISIONING_FAILED, code=code, message=message,
                          action_type="EXECUTE_CREATE", steps=held)
            return
        if server is None:
            fail_instance(instance, to=Status.PROVISIONING_FAILED, code=ErrorCode.PROVIDER_DELETED,
                          message="The server disappeared at the provider right after it was started.",
                          action_type="PROVIDER_DELETED_DETECTED", steps=held)
            return
        now = timezone.now()
        booting = {**_address_fields(server), "progress_at": now,
                   "startup_deadline_at": health.startup_deadline(instance, now=now)}
        # Booting, and ready too when the machine is up already: the row read and locked once, both moves
        # written in one update, their rows in one insert, one commit.
        with transaction.atomic():
            unsaved: set[str] = set()
            moved = _move(instance, Status.BOOTING, action_type="INSTANCE_CREATED",
                          allowed_from=frozenset({Status.PROVISIONING}), fields=booting, steps=held, unsaved=unsaved)
            # The first health check runs now, not at the next sweep: a machine that is up is ready at once.
            agent = health.runs_worker_agent(instance)
            ready = moved and health.startup_verdict(instance, server, now=now, agent=agent) is Verdict.READY
            if ready:
                _mark_ready(instance, server, already_locked=True, steps=held, unsaved=unsaved)
            write_moves(instance, unsaved, held)
    if moved and not ready:
        apply_startup_verdict(instance, server, adapter=adapter)


def _create_server(instance: Instance, adapter: CloudProvider, credentials: MintedCredentials, *, parent,
                   held: list[ActionLog]) -> bool:
    """Create the server and commit its id at once. False when the instance ended meanwhile."""
    # Only a run after the first may find a server an earlier one created: the first need not look for one.
    may_exist = instance.provision_attempts > 1
    with action_step("PROVIDER_CREATE", component=ORCH, instance_id=instance.pk, parent=parent, into=held) as row:
        server = adapter.create_server(_server_spec(instance, credentials, may_exist=may_exist))
        row.response_payload = {"server_id": server.server_id, "state": server.state.value}
    with action_step("PERSIST_PROVIDER_ID", component=ORCH, instance_id=instance.pk, parent=parent,
                     into=held) as row:
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
        with action_step("PROVIDER_TERMINATE", component=ORCH, instance_id=instance.pk, parent=parent,
                         metadata={"reason": f"instance already {status}"}):
            adapter.terminate_server(server.server_id, zone=instance.zone.code)
    else:
        terminate_instance(instance, reason=error_code or "ended during creation")
    return False


def _start_server(instance: Instance, adapter: CloudProvider, *, parent, held: list[ActionLog]) -> ServerInfo | None:
    """Power the server on and read its address (None when the provider no longer knows it)."""
    zone = instance.zone.code
    with action_step("PROVIDER_START", component=ORCH, instance_id=instance.pk, parent=parent, into=held):
        started = adapter.start_server(instance.provider_server_id, zone=zone)
    with action_step("PROVIDER_GET_IP", component=ORCH, instance_id=instance.pk, parent=parent, into=held) as row:
        if started is not None and started.public_ip:
            # The power-on's answer carried the address: no second call for it.
            server = started
            row.metadata = {"from": "power-on answer"}
        else:
            server = adapter.get_server(instance.provider_server_id, zone=zone)
        row.response_payload = {"public_ip": server.public_ip if server else None,
                                "state": server.state.value if server else "gone"}
    return server


def _server_spec(instance: Instance, credentials: MintedCredentials, *, may_exist: bool = True) -> ServerSpec:
    instance_id = str(instance.pk)
    env = {
        "INVENTIV_INSTANCE_ID": instance_id,
        "INVENTIV_CONTROL_PLANE_URL": settings.PUBLIC_URL,
        "INVENTIV_MODEL": instance.model.code,
        "INVENTIV_HEARTBEAT_INTERVAL_S": str(get_setting("heartbeat_interval_s")),
        ENV_WORKER_TOKEN: credentials.worker_token,
        ENV_ENGINE_API_KEY: credentials.engine_api_key,
    }
    return ServerSpec(
        instance_id=instance_id, zone=instance.zone.code, commercial_type=instance.instance_type.code,
        name=server_name(instance_id), tags=[INVENTIV_TAG, instance_tag(instance_id)],
        user_data=_user_data(instance, env), allocation_params=dict(instance.instance_type.allocation_params),
        runtime_env=env, may_exist=may_exist,
    )


def _user_data(instance: Instance, env: dict) -> str:
    """Cloud-init that installs vLLM and the worker agent. The Mock hands `runtime_env` to its runtime instead."""
    if instance.provider.is_mock:
        return ""
    params = instance.instance_type.allocation_params
    if not params.get("vllm_image"):
        raise ProviderError(f"instance type {instance.instance_type.code} has no vllm_image in its allocation "
                            "parameters: set one in the catalog")
    gpus = instance.instance_type.gpu_count
    try:
        return render_user_data(
            instance_id=env["INVENTIV_INSTANCE_ID"], control_plane_url=env["INVENTIV_CONTROL_PLANE_URL"],
            worker_token=env[ENV_WORKER_TOKEN], engine_api_key=env[ENV_ENGINE_API_KEY], model=instance.model.code,
            served_model_name=instance.model.code, vllm_image=params["vllm_image"], agent_port=AGENT_PORT,
            engine_port=ENGINE_PORT, engine_args=["--tensor-parallel-size", str(gpus)] if gpus > 1 else [],
        )
    except ValueError as exc:
        raise ProviderError(f"the machine's cloud-init cannot be written: {exc}") from None


def _address_fields(server: ServerInfo) -> dict:
    fields = {"public_ip": server.public_ip}
    for port in ("agent_port", "engine_port"):
        if server.metadata.get(port):
            fields[port] = int(server.metadata[port])
    return fields


def adapter_for(provider: Provider) -> CloudProvider:
    """The provider's adapter, configured from runtime settings (Mock delays) and the environment."""
    options = {}
    if provider.is_mock:
        options = {"boot_delay_s": get_setting("mock_boot_delay_s"),
                   "deletion_delay_s": get_setting("mock_deletion_delay_s"),
                   "runtime": settings.INVENTIV_MOCK_RUNTIME}
    try:
        return get_provider(provider.adapter, **options)
    except ImportError as exc:
        raise ProviderError(f"the {provider.adapter} adapter cannot be loaded: {exc}") from None


# --- Health ---------------------------------------------------------------------------------


def check_instance_health(instance_id) -> None:
    """Ask the provider about a booting/installing/starting instance and act on the answer."""
    with claimed(instance_id, statuses=STARTUP, lease_s=STEP_LEASE_S) as instance:
        if instance is None:
            return
        adapter = adapter_for(instance.provider)
        server = adapter.get_server(instance.provider_server_id, zone=instance.zone.code)
        apply_startup_verdict(instance, server, adapter=adapter)


def apply_startup_verdict(instance: Instance, server: ServerInfo | None, *, adapter: CloudProvider) -> Verdict:
    """Move a starting instance on according to its server (`health.startup_verdict`)."""
    agent = health.runs_worker_agent(instance)
    verdict = health.startup_verdict(instance, server, now=timezone.now(), agent=agent)
    if agent and verdict in (Verdict.WAIT, Verdict.INSTALLING):
        from instances import workers  # workers builds on this module

        # Heartbeats make agent machines ready; this only catches one that came before the server was recorded.
        if workers.promote_if_worker_ready(instance):
            return Verdict.READY
    if verdict is Verdict.READY:
        _mark_ready(instance, server)
    elif verdict is Verdict.INSTALLING:
        _move(instance, Status.INSTALLING, action_type="HEALTH_CHECK", allowed_from=frozenset({Status.BOOTING}),
              reason="the server runs; its worker agent installs and reports by heartbeat")
    elif verdict is Verdict.GONE:
        handle_provider_deleted(instance, adapter=adapter, allowed_from=STARTUP)
    elif verdict is Verdict.TIMED_OUT:
        state = server.state.value if server else "gone"
        fail_instance(instance, to=Status.STARTUP_FAILED, code=ErrorCode.STARTUP_TIMEOUT,
                      action_type="INSTANCE_STARTUP_FAILED",
                      message=f"Not ready by the startup deadline ({instance.startup_deadline_at:%Y-%m-%d %H:%M:%S} "
                              f"UTC); the server was {state}.")
    elif server is not None and server.public_ip and not instance.public_ip:
        Instance.objects.filter(pk=instance.pk).update(**_address_fields(server))
    return verdict


def _mark_ready(instance: Instance, server: ServerInfo, *, already_locked: bool = False,
                steps: list[ActionLog] | None = None, unsaved: set[str] | None = None) -> None:
    """Log the health check that found the machine up and move it to ready, in one insert and one commit (the
    caller's, if any; `steps` and `unsaved` as in `transition`). A ready machine needs no claim: the move lets
    go of it."""
    steps = steps if steps is not None else []
    steps.append(new_action("HEALTH_CHECK", component=ORCH, instance_id=instance.pk, status_before=instance.status,
                            metadata={"server_state": server.state.value,
                                      "runtime": server.metadata.get("runtime", "")}))
    _move(instance, Status.READY, action_type="INSTANCE_READY", allowed_from=STARTUP, steps=steps,
          fields={"claimed_until": None}, already_locked=already_locked, unsaved=unsaved)


def handle_provider_deleted(instance: Instance, *, adapter: CloudProvider, allowed_from: frozenset[str]) -> bool:
    """The provider no longer knows the server: the instance is terminated (PROVIDER_DELETED)."""
    moved = _move(
        instance, Status.TERMINATED, action_type="PROVIDER_DELETED_DETECTED", allowed_from=allowed_from,
        error_code=ErrorCode.PROVIDER_DELETED, fields={"deletion_reason": ErrorCode.PROVIDER_DELETED},
        error_message=f"Server {instance.provider_server_id} was deleted at {instance.provider.code} outside Inventiv.",
    )
    if moved:
        _delete_volumes(instance, adapter)
    return moved


# --- Failure, termination, archive, reinstall -----------------------------------------------


def fail_instance(instance: Instance, *, to: str, code: str, message: str, action_type: str,
                  allowed_from: frozenset[str] | None = None, metadata: dict | None = None,
                  steps: list[ActionLog] | None = None) -> Instance:
    """Move `instance` to a failed status with an error code, from the status it is in now (`steps`: held
    rows of what led to the failure, written first).

    A failed machine that exists at the provider is terminated at once (deletion_reason = the code), so
    nothing is paid for silently.
    """
    moved = _move(instance, to, action_type=action_type, error_code=code, error_message=message,
                  allowed_from=allowed_from or frozenset({instance.status}), metadata=metadata, steps=steps)
    if moved and instance.provider_server_id:
        terminate_instance(instance, reason=code)
    return instance


def terminate_instance(instance: Instance, *, reason: str, actor=None) -> Instance:
    """Terminate `instance`. Idempotent: one already terminating or ended is returned as it is.

    Without a provider server it is `terminated` at once; otherwise it goes `terminating` and the
    terminate task deletes the server after the commit.
    """
    component = Component.API if actor is not None else ORCH
    with transaction.atomic():
        locked = Instance.objects.select_for_update().filter(pk=instance.pk).first()
        if locked is None or locked.status in TERMINATION_REQUESTED:
            _refresh(instance, locked)
            return instance
        if locked.provider_server_id:
            # The termination takes the instance over: whoever held it (a provision that just failed, a
            # sweep) lets go, so the terminate task can claim it at once.
            fresh, _ = transition(
                locked, Status.TERMINATING, action_type="REQUEST_TERMINATE", reason=reason, actor=actor,
                component=component, fields={"deletion_reason": reason[:200], "claimed_until": None},
                on_commit=lambda: _enqueue_now("terminate_instance_task", locked.pk),
            )
        else:
            record_action("REQUEST_TERMINATE", component=component, instance_id=locked.pk, user=actor,
                          status_before=locked.status, metadata={"reason": reason})
            fresh, _ = transition(
                locked, Status.TERMINATED, action_type="INSTANCE_TERMINATED", reason="no server at the provider",
                actor=actor, component=component, fields={"deletion_reason": reason[:200]},
            )
    _refresh(instance, fresh)
    return instance


def execute_termination(instance_id) -> None:
    """Delete the server of a `terminating` instance and confirm it is gone. Safe to run again."""
    with claimed(instance_id, statuses={Status.TERMINATING}, lease_s=STEP_LEASE_S) as instance:
        if instance is None:
            return
        adapter = adapter_for(instance.provider)
        execute = record_action("EXECUTE_TERMINATE", component=ORCH, instance_id=instance.pk,
                                metadata={"reason": instance.deletion_reason})
        try:
            with action_step("PROVIDER_TERMINATE", component=ORCH, instance_id=instance.pk, parent=execute):
                adapter.terminate_server(instance.provider_server_id, zone=instance.zone.code)
        except ProviderError as exc:
            if not exc.permanent:
                raise
            return  # logged by the step; the terminator sweep tries again
        confirm_termination(instance, adapter=adapter, parent=execute, log_pending=True)


def retry_termination(instance: Instance, *, server: ServerInfo | None, adapter: CloudProvider) -> None:
    """The terminator sweep's step for an instance still `terminating` some time after the request."""
    if server is not None and server.state == ServerState.STOPPING:
        return  # the deletion is under way at the provider
    if server is None or server.state == ServerState.GONE:
        confirm_termination(instance, adapter=adapter, server=None)
        return
    retry = record_action("TERMINATOR_RETRY", component=ORCH, instance_id=instance.pk,
                          metadata={"server_state": server.state.value})
    # Keep the claim past this sweep: a terminate that did not take is retried after a pause, not every tick.
    Instance.objects.filter(pk=instance.pk).update(
        claimed_until=timezone.now() + timedelta(seconds=TERMINATOR_RETRY_BACKOFF_S)
    )
    with action_step("PROVIDER_TERMINATE", component=ORCH, instance_id=instance.pk, parent=retry):
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
                          metadata={"server_state": server.state.value})
        return False
    volumes_error = _delete_volumes(instance, adapter)
    with transaction.atomic():
        record_action("TERMINATION_CONFIRMED", component=ORCH, instance_id=instance.pk, parent=parent,
                      metadata={"volumes_deleted": volumes_error is None, **({"volumes_error": volumes_error}
                                                                             if volumes_error else {})})
        _move(instance, Status.TERMINATED, action_type="INSTANCE_TERMINATED",
              allowed_from=frozenset({Status.TERMINATING}))
    return True


def _delete_volumes(instance: Instance, adapter: CloudProvider) -> str | None:
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
    _move(instance, Status.ARCHIVED, action_type="ARCHIVE_INSTANCE", actor=actor,
          component=Component.API if actor is not None else ORCH)
    return instance


def reinstall_instance(instance: Instance, *, actor=None) -> Instance:
    """Run the startup path again on the same server: `starting` (`installing` where a worker agent
    installs) and a health check on commit. Allowed from ready, startup_failed and failed with a server;
    raises InvalidTransition otherwise."""
    instance.refresh_from_db()
    target = Status.INSTALLING if health.runs_worker_agent(instance) else Status.STARTING
    if instance.status not in REINSTALLABLE or not instance.provider_server_id:
        raise InvalidTransition(instance.pk, instance.status, target)
    component = Component.API if actor is not None else ORCH
    with transaction.atomic():
        record_action("REQUEST_REINSTALL", component=component, instance_id=instance.pk, user=actor,
                      status_before=instance.status)
        moved = _move(
            instance, target, action_type="EXECUTE_REINSTALL", actor=actor, component=component,
            allowed_from=REINSTALLABLE,
            fields={"error_code": "", "error_message": "",
                    "startup_deadline_at": health.startup_deadline(instance, now=timezone.now())},
        )
        if not moved:
            raise InvalidTransition(instance.pk, instance.status, target)
        _enqueue("check_health_task", instance.pk)
    return instance


# --- Lost provisions ------------------------------------------------------------------------


def requeue_provision(instance: Instance, *, max_requeues: int) -> bool:
    """Enqueue a provision that made no progress again, or fail it once it was re-queued `max_requeues`
    times. True when re-queued."""
    if instance.requeue_count >= max_requeues:
        code = ErrorCode.PROVIDER_START_FAILED if instance.provider_server_id else ErrorCode.PROVIDER_CREATE_FAILED
        fail_instance(instance, to=Status.PROVISIONING_FAILED, code=code, action_type="REQUEUE_PROVISION",
                      allowed_from=frozenset({Status.PROVISIONING}),
                      message=f"Provisioning made no progress after {instance.requeue_count} re-queues.")
        return False
    with transaction.atomic():
        changed = Instance.objects.filter(pk=instance.pk, status=Status.PROVISIONING).update(
            requeue_count=F("requeue_count") + 1, progress_at=timezone.now(), claimed_until=None
        )
        if changed:
            record_action("REQUEUE_PROVISION", component=ORCH, instance_id=instance.pk,
                          metadata={"requeue": instance.requeue_count + 1, "max_requeues": max_requeues})
            _enqueue("provision_instance_task", instance.pk)
    return bool(changed)


# --- Claims ---------------------------------------------------------------------------------


def unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)


@contextmanager
def claimed(instance_id, *, statuses, lease_s: float, progress: bool = False,
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
        instance = Instance.objects.select_related("provider", "zone", "instance_type", "model").get(pk=instance_id)
        yield instance
    finally:
        if instance is None or instance.claimed_until == until:
            release_claims([instance_id], until=until)


def release_claims(instance_ids, *, until: datetime) -> None:
    # Only our own claim: a row another worker claimed since (ours expired) keeps its claim.
    Instance.objects.filter(pk__in=instance_ids, claimed_until=until).update(claimed_until=None)


# --- Helpers --------------------------------------------------------------------------------


def _move(instance: Instance, to: str, **kwargs) -> bool:
    """`transition()`, keeping the caller's instance object (and its loaded relations) up to date."""
    fresh, changed = transition(instance, to, **kwargs)
    _refresh(instance, fresh)
    return changed


def _refresh(instance: Instance, fresh: Instance | None) -> None:
    if fresh is not None and fresh is not instance:
        for field in Instance._meta.concrete_fields:
            setattr(instance, field.attname, getattr(fresh, field.attname))


def _enqueue(task_name: str, instance_id) -> None:
    """Run the task once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _enqueue_now(task_name, instance_id))


def _enqueue_now(task_name: str, instance_id) -> None:
    from instances import tasks  # the tasks module imports this one

    getattr(tasks, task_name).delay(str(instance_id))
