"""The control plane's side of the worker agent (worker_agent/PROTOCOL.md is the contract): authentication,
registration and heartbeats. worker_protocol.py turns these into the endpoints' answers.

A worker authenticates with its instance's token, registers once, then sends a heartbeat every few
seconds. Readiness is event-driven: the heartbeat that says `ready` with the instance's model makes it
ready at once (`readiness.mark_ready`); the health sweep only promotes from the last heartbeat it finds (a
safety net for a heartbeat that came while the instance was still being recorded). Staleness and lost
workers are in freshness.py and lost_workers.py.

The heartbeat is the hottest write path of the control plane: when nothing changes it costs one query
for the instance (with its registration) and `record_heartbeat`'s writes (one statement on PostgreSQL);
bench/heartbeats.py measures it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache

from django.db import connection
from django.utils import timezone

from catalog.models import LlmModel
from catalog.runtime_settings import get_setting
from instances.credentials import verify_worker_token
from instances.draining import finish_drain_task
from instances.lifecycle import Move, UnitOfWork, transition
from instances.models import Instance
from instances.readiness import mark_ready, worker_evidence
from instances.status import BEFORE_STARTING, GONE, SHUTDOWN, STARTUP, ErrorCode, Status
from instances.termination import fail_instance
from monitoring.heartbeats import Heartbeat, Registration, record_heartbeat, record_registration
from monitoring.models import WorkerState
from monitoring.services import Component, new_action

WORKER = Component.WORKER
INTERVAL_KEY = "heartbeat_interval_s"
# The same answer for an unknown instance and a wrong token, so the endpoint does not say which ids exist.
INVALID_TOKEN = "invalid worker token"
INSTANCE_FIELD_ORDER = [field.attname for field in Instance._meta.concrete_fields]


class WorkerAuthFailed(Exception):
    """The request does not carry the named instance's valid worker token (HTTP 401)."""


class NotRegistered(Exception):
    """A heartbeat from a worker the control plane has no registration for (HTTP 409)."""


def authenticate_worker(*, instance_id, token: str | None) -> Instance:
    """The instance `instance_id` when `token` is its worker token; raises WorkerAuthFailed otherwise.

    One query fetches what the heartbeat needs besides: the status, the model's name and whether the worker
    registered. The instance comes back with only those fields loaded.
    """
    if not token:
        raise WorkerAuthFailed("missing worker token (Authorization: Bearer ...)")
    try:
        pk = uuid.UUID(str(instance_id))
    except ValueError:
        raise WorkerAuthFailed(INVALID_TOKEN) from None
    with connection.cursor() as cursor:
        cursor.execute(_auth_sql(), [Instance._meta.pk.get_db_prep_value(pk, connection)])
        row = cursor.fetchone()
    if row is None:
        raise WorkerAuthFailed(INVALID_TOKEN)
    status, token_hash, server_id, model_id, model_code, registered = row
    loaded = {"id": pk, "status": status, "worker_token_hash": token_hash, "provider_server_id": server_id,
              "model_id": model_id}
    # from_db takes the values in the model's field order; every field not loaded here stays deferred.
    values = [loaded[name] for name in INSTANCE_FIELD_ORDER if name in loaded]
    instance = Instance.from_db(connection.alias, list(loaded), values)
    if not verify_worker_token(instance, token):
        raise WorkerAuthFailed(INVALID_TOKEN)
    if instance.status in GONE:  # its token is revoked: the machine is gone or going
        raise WorkerAuthFailed(f"worker token revoked: the instance is {instance.status}")
    if model_id is not None:
        instance.model = LlmModel.from_db(connection.alias, ["id", "code"], [model_id, model_code])
    instance.worker_registered = bool(registered)
    return instance


@lru_cache(maxsize=1)
def _auth_sql() -> str:
    """The authentication query, in SQL both PostgreSQL and SQLite run.

    Written by hand because it runs for every heartbeat: built by the ORM (a join and an EXISTS), compiling
    it cost more CPU than everything else on the path together (bench/heartbeats.py).
    """
    return f"""
        SELECT i.status, i.worker_token_hash, i.provider_server_id, i.model_id, m.code,
               EXISTS (SELECT 1 FROM {WorkerState._meta.db_table} w
                       WHERE w.instance_id = i.id AND w.registered_at IS NOT NULL)
        FROM {Instance._meta.db_table} i LEFT OUTER JOIN {LlmModel._meta.db_table} m ON m.id = i.model_id
        WHERE i.id = %s
    """


def heartbeat_interval_s() -> int:
    """The heartbeat_interval_s setting (every answer carries it; `get_setting` keeps it cached)."""
    return get_setting(INTERVAL_KEY)


def _model_code(instance: Instance) -> str:
    return instance.model.code if instance.model_id else ""


def register_worker(instance: Instance, registration: Registration, *, now: datetime | None = None) -> dict:
    """Record the worker's registration (WORKER_REGISTERED) and answer with the heartbeat interval.

    A machine still booting or installing moves to `starting`: its agent runs and its engine loads. The
    ports the agent reports are stored on the instance (the router reaches the engine there).
    """
    now = now or timezone.now()
    ports = {name: getattr(registration, name) for name in ("agent_port", "engine_port")
             if getattr(registration, name)}
    metadata = {"agent_version": registration.agent_version, "engine_version": registration.engine_version,
                "model": registration.model, "gpus": len(registration.gpus), **ports}
    with UnitOfWork(instance) as work:
        record_registration(instance.pk, registration, now=now)
        status = work.instance.status
        if not work.move(Move(Status.STARTING, "WORKER_REGISTERED", component=WORKER, metadata=metadata,
                              fields=ports, allowed_from=BEFORE_STARTING, reason="the worker agent registered")):
            work.log(new_action("WORKER_REGISTERED", component=WORKER, instance_id=instance.pk, metadata=metadata,
                                status_before=status, status_after=status))
            work.change(**ports)
    return {"heartbeat_interval_s": heartbeat_interval_s()}


def accept_heartbeat(instance: Instance, heartbeat: Heartbeat, *, now: datetime | None = None) -> dict:
    """Record a heartbeat, act on what it says about a starting machine, and answer with the action.

    Raises NotRegistered (nothing recorded) when the worker never registered: it registers again.
    """
    if not instance.worker_registered:
        raise NotRegistered("not registered")
    record_heartbeat(instance.pk, heartbeat, now=now)
    if instance.status in STARTUP:
        _act_on_startup_heartbeat(instance, heartbeat)
    elif instance.status == Status.DRAINING and heartbeat.in_flight == 0:
        # The engine has emptied: finish the drain now rather than at the next sweep.
        finish_drain_task.delay_on_commit(str(instance.pk))
    return {"action": heartbeat_action(instance.status), "heartbeat_interval_s": heartbeat_interval_s()}


def heartbeat_action(status: str) -> str:
    """What the worker of an instance in `status` must do: serve, drain or shut down."""
    if status == Status.DRAINING:
        return "drain"
    if status in SHUTDOWN:
        return "shutdown"
    return "serve"


def _act_on_startup_heartbeat(instance: Instance, heartbeat: Heartbeat) -> None:
    expected = _model_code(instance)
    if heartbeat.status == WorkerState.WorkerStatus.READY and heartbeat.model == expected:
        with UnitOfWork(instance) as work:
            mark_ready(work, worker_evidence(model=expected, via="heartbeat"))
    elif heartbeat.status == WorkerState.WorkerStatus.ERROR:
        fail_model_load(instance, heartbeat)
    elif instance.status in BEFORE_STARTING:
        # The worker registered before the server was recorded (its register could not move the instance).
        transition(instance, Move(Status.STARTING, "HEALTH_CHECK", component=WORKER, allowed_from=BEFORE_STARTING,
                                  reason="the worker agent reports its engine starting"))


def fail_model_load(instance: Instance, heartbeat: Heartbeat) -> None:
    """The engine died or kept exiting while starting: startup_failed MODEL_LOAD_FAILED, then terminated."""
    reason = heartbeat.reason or "the engine failed"
    fail_instance(
        instance, to=Status.STARTUP_FAILED, code=ErrorCode.MODEL_LOAD_FAILED, action_type="INSTANCE_STARTUP_FAILED",
        message=f"The engine could not serve {_model_code(instance) or 'the model'}: {reason}.",
        allowed_from=STARTUP,
        metadata={"reason": reason, "engine_log_tail": heartbeat.engine_log_tail},
    )
