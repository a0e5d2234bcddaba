"""The control plane's side of the worker agent (worker_agent/PROTOCOL.md is the contract).

A worker authenticates with its instance's token, registers once, then sends a heartbeat every few
seconds. Readiness is event-driven: the heartbeat that says `ready` with the instance's model moves it to
`ready` at once; the health sweep only promotes from the last heartbeat it finds (a safety net for a
heartbeat that came while the instance was still being recorded). A worker silent for longer than
heartbeat_interval_s x heartbeat_stale_missed is stale for routing; after heartbeat_lost_grace_s its
instance fails with HEARTBEAT_LOST and is terminated.

The heartbeat is the hottest write path of the control plane: when nothing changes it costs one query
for the instance (with its registration) and `record_heartbeat`'s writes (one
statement on PostgreSQL); bench/heartbeats.py measures it.
"""

from __future__ import annotations

import io
import logging
import tarfile
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from catalog.models import LlmModel, Provider
from catalog.runtime_settings import get_setting
from instances import draining, services
from instances.credentials import verify_worker_token
from instances.lifecycle import transition
from instances.models import Instance
from instances.status import BEFORE_STARTING, GONE, SERVING, SHUTDOWN, STARTUP, ErrorCode, Status
from instances.sweeps import claimed_batches
from monitoring.heartbeats import (
    Heartbeat,
    PayloadInvalid,
    Registration,
    record_heartbeat,
    record_registration,
)
from monitoring.models import WorkerState
from monitoring.services import Component, record_action
from providers.cloudinit import STEPS

log = logging.getLogger(__name__)

WORKER = Component.WORKER
INTERVAL_KEY = "heartbeat_interval_s"
# The same answer for an unknown instance and a wrong token, so the endpoint does not say which ids exist.
INVALID_TOKEN = "invalid worker token"
MAX_STEP_MESSAGE = 2000
AGENT_PACKAGE = Path(settings.BASE_DIR) / "worker_agent"
# The agent's own tests and byte-code stay out of the archive a machine downloads.
ARCHIVE_SKIPPED = frozenset({"__pycache__", "tests"})
INSTANCE_FIELD_ORDER = [field.attname for field in Instance._meta.concrete_fields]


class WorkerAuthFailed(Exception):
    """The request does not carry the named instance's valid worker token (HTTP 401)."""


class NotRegistered(Exception):
    """A heartbeat from a worker the control plane has no registration for (HTTP 409)."""


# --- Authentication -------------------------------------------------------------------------


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


# --- Registration and heartbeats ------------------------------------------------------------


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
    with transaction.atomic():
        record_registration(instance.pk, registration, now=now)
        fresh, moved = transition(
            instance.pk, Status.STARTING, action_type="WORKER_REGISTERED", component=WORKER, metadata=metadata,
            fields=ports, allowed_from=BEFORE_STARTING, reason="the worker agent registered",
        )
        if not moved:
            record_action("WORKER_REGISTERED", component=WORKER, instance_id=instance.pk, metadata=metadata,
                          status_before=fresh.status, status_after=fresh.status)
            if ports:
                Instance.objects.filter(pk=instance.pk).update(**ports)
    instance.status = fresh.status
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
        transaction.on_commit(lambda: draining.enqueue_finish(instance.pk))
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
        mark_ready(instance, model=expected, via="heartbeat")
    elif heartbeat.status == WorkerState.WorkerStatus.ERROR:
        fail_model_load(instance, heartbeat)
    elif instance.status in BEFORE_STARTING:
        # The worker registered before the server was recorded (its register could not move the instance).
        fresh, _ = transition(instance.pk, Status.STARTING, action_type="HEALTH_CHECK", component=WORKER,
                              allowed_from=BEFORE_STARTING, reason="the worker agent reports its engine starting")
        instance.status = fresh.status


def mark_ready(instance: Instance, *, model: str, via: str) -> bool:
    """The engine answers and lists the model: WORKER_VLLM_HTTP_OK, WORKER_MODEL_LOADED, then INSTANCE_READY.

    True when this call moved the instance (False when it had left its startup status meanwhile).
    """
    metadata = {"model": model, "via": via}
    with transaction.atomic():
        locked = Instance.objects.select_for_update().only("status").get(pk=instance.pk)
        if locked.status not in STARTUP:
            instance.status = locked.status
            return False
        for action_type in ("WORKER_VLLM_HTTP_OK", "WORKER_MODEL_LOADED"):
            record_action(action_type, component=WORKER, instance_id=instance.pk, metadata=metadata,
                          status_before=locked.status, status_after=locked.status)
        fresh, moved = transition(instance.pk, Status.READY, action_type="INSTANCE_READY", component=WORKER,
                                  metadata=metadata, allowed_from=STARTUP)
    instance.status = fresh.status
    return moved


def fail_model_load(instance: Instance, heartbeat: Heartbeat) -> None:
    """The engine died or kept exiting while starting: startup_failed MODEL_LOAD_FAILED, then terminated."""
    reason = heartbeat.reason or "the engine failed"
    services.fail_instance(
        instance, to=Status.STARTUP_FAILED, code=ErrorCode.MODEL_LOAD_FAILED, action_type="INSTANCE_STARTUP_FAILED",
        message=f"The engine could not serve {_model_code(instance) or 'the model'}: {reason}.",
        allowed_from=STARTUP,
        metadata={"reason": reason, "engine_log_tail": heartbeat.engine_log_tail},
    )


def promote_if_worker_ready(instance: Instance, *, now: datetime | None = None) -> bool:
    """The health sweep's safety net: a starting instance whose worker's last (fresh) heartbeat said
    `ready` with the expected model becomes ready. True when it did."""
    state = WorkerState.objects.filter(instance_id=instance.pk).only("status", "model", "last_heartbeat_at").first()
    expected = _model_code(instance)
    if state is None or state.status != WorkerState.WorkerStatus.READY or state.model != expected:
        return False
    if not _within(state.last_heartbeat_at, stale_after_s(), now or timezone.now()):
        return False
    return mark_ready(instance, model=expected, via="health sweep")


# --- Install failures and the agent archive --------------------------------------------------


def validate_install_failure(payload) -> tuple[str, str]:
    """(step, message) of a cloud-init failure report; raises PayloadInvalid with every bad field."""
    if not isinstance(payload, dict):
        raise PayloadInvalid({"body": "must be a JSON object"})
    errors = {}
    step, message = payload.get("step"), payload.get("message") or ""
    if not isinstance(step, str) or step not in STEPS:
        errors["step"] = f"must be one of {', '.join(STEPS)}"
    if not isinstance(message, str) or len(message) > MAX_STEP_MESSAGE:
        errors["message"] = f"must be a string of at most {MAX_STEP_MESSAGE} characters"
    if errors:
        raise PayloadInvalid(errors)
    return step, message


def report_install_failure(instance: Instance, *, step: str, message: str = "") -> Instance:
    """The machine's install script failed at `step`: startup_failed WORKER_INSTALL_FAILED, then terminated.

    A report for an instance past its startup (a late or repeated one) changes nothing.
    """
    detail = f": {message}" if message else ""
    return services.fail_instance(
        instance, to=Status.STARTUP_FAILED, code=ErrorCode.WORKER_INSTALL_FAILED,
        action_type="INSTANCE_STARTUP_FAILED", allowed_from=STARTUP,
        message=f"The worker install failed at step {step}{detail}.", metadata={"step": step},
    )


@lru_cache(maxsize=1)
def agent_archive() -> bytes:
    """A tar.gz of the worker_agent package (its requirements.txt included), as cloud-init unpacks it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(AGENT_PACKAGE.rglob("*")):
            relative = path.relative_to(AGENT_PACKAGE.parent)
            if not path.is_file() or ARCHIVE_SKIPPED.intersection(relative.parts) or path.suffix == ".pyc":
                continue
            info = archive.gettarinfo(str(path), arcname=str(relative))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


# --- Freshness and lost workers -------------------------------------------------------------


def stale_after_s() -> float:
    """A worker silent for longer than this is stale: the router skips it."""
    return get_setting("heartbeat_interval_s") * get_setting("heartbeat_stale_missed")


def _within(moment: datetime | None, seconds: float, now: datetime) -> bool:
    return moment is not None and now - moment <= timedelta(seconds=seconds)


def is_worker_fresh(instance_id, *, now: datetime | None = None) -> bool:
    """Whether the instance's worker sent a heartbeat within the stale window."""
    last = WorkerState.objects.filter(instance_id=instance_id).values_list("last_heartbeat_at", flat=True).first()
    return _within(last, stale_after_s(), now or timezone.now())


def with_fresh_worker(queryset: QuerySet[Instance], *, now: datetime | None = None) -> QuerySet[Instance]:
    """`queryset` narrowed to instances whose worker is fresh (for the router's table)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=stale_after_s())
    return queryset.filter(
        pk__in=WorkerState.objects.filter(last_heartbeat_at__gte=cutoff).values("instance_id")
    )


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
    if _within(silent_from, grace_s, now):
        return False
    services.fail_instance(
        instance, to=Status.FAILED, code=ErrorCode.HEARTBEAT_LOST, action_type="HEARTBEAT_LOST",
        allowed_from=SERVING,
        message=(f"No heartbeat from the worker for {(now - silent_from).total_seconds():.0f} s "
                 f"(grace {grace_s:g} s)" + ("" if last else "; it never sent one") + "."),
        metadata={"last_heartbeat_at": last.isoformat() if last else None, "grace_s": grace_s},
    )
    # The failure terminates the machine at once, so the instance is already past `failed` here.
    return instance.error_code == ErrorCode.HEARTBEAT_LOST and instance.status not in SERVING
