"""The Mock cloud: a deterministic, database-backed stand-in for a GPU cloud.

Servers and injected faults are rows (providers.models), so a Celery worker in another process sees
the same cloud as the test that drives it. A server's state derives from its stored timestamps, the
configured delays and an injectable clock: the same rows and the same clock give the same answer.

What runs on a Mock machine is a `MockRuntime`: `none` runs nothing (the machine counts as healthy once
the server is running); `process` (providers/mock_process.py) runs a real worker agent and the vLLM
simulator per machine. As on a real cloud, the machine and what runs on it are separate: a machine whose
agent died stays `running` (only its heartbeats stop, and the lost-worker sweep fails it with
HEARTBEAT_LOST), while a deleted machine (`vanish_server`, the `vanish` fault, a termination) runs nothing.
What an operator does to it by hand is in providers/mock_console.py (README, "The Mock cloud").
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timedelta
from importlib import import_module

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from providers.base import (
    INVENTIV_TAG,
    CloudProvider,
    ProviderError,
    ServerInfo,
    ServerSpec,
    ServerState,
    TypeOffer,
    instance_id_from_tags,
    provider_error,
)
from providers.models import MockFault, MockServer

# What the Mock cloud sells (the same figures as the catalog seed).
MOCK_TYPES = (
    TypeOffer(code="MOCK-GPU-S", gpu_count=1, vram_per_gpu_gb=24, vcpu=8, ram_gb=32, hourly_price=0.25,
              gpu_model="Mock GPU"),
    TypeOffer(code="MOCK-4GPU-M", gpu_count=4, vram_per_gpu_gb=48, vcpu=16, ram_gb=64, hourly_price=0.75,
              gpu_model="Mock GPU"),
)
CREATE_FAULTS = (MockFault.Kind.OUT_OF_STOCK, MockFault.Kind.QUOTA_EXCEEDED, MockFault.Kind.CREATE_FAILS)
START_FAULTS = (MockFault.Kind.START_FAILS, MockFault.Kind.START_FALLS_BACK, MockFault.Kind.VANISH)
FAULT_CODES = {
    MockFault.Kind.OUT_OF_STOCK: "PROVIDER_OUT_OF_STOCK",
    MockFault.Kind.QUOTA_EXCEEDED: "PROVIDER_QUOTA_EXCEEDED",
}
# What a server that fell back to stopped after its power-on says why (instances/health.py reads it).
FELL_BACK_DETAIL = "out of stock"
Clock = Callable[[], datetime]


class MockOperationError(Exception):
    """An operation on a Mock server that cannot apply to it now (it is deleted, or runs no agent)."""


# --- Runtimes -------------------------------------------------------------------------------


class MockRuntime(abc.ABC):
    """What runs on a Mock machine between power-on and deletion."""

    name: str = ""

    @abc.abstractmethod
    def start(self, server: MockServer) -> dict:
        """Start the machine's processes; return metadata to keep on the server (ports, pids)."""

    @abc.abstractmethod
    def stop(self, server: MockServer) -> None:
        """Stop whatever `start` started. Called again for a server already stopped: must not fail."""

    def kill_agent(self, server: MockServer) -> None:
        """Kill the machine's worker agent (SIGKILL), leaving the machine and its engine up."""
        raise MockOperationError(f"Mock server {server.pk} runs no worker agent (runtime {self.name!r})")

    def crash_engine(self, server: MockServer) -> None:
        """Kill the machine's inference engine (SIGKILL), as a crash would; its agent sees it exit."""
        raise MockOperationError(f"Mock server {server.pk} runs no engine (runtime {self.name!r})")

    def agent_running(self, server: MockServer) -> bool | None:
        """Whether the machine's worker agent runs (None where the runtime runs no agent)."""
        return None


class NoneRuntime(MockRuntime):
    """Nothing runs: pure simulation, for tests and scale runs with thousands of machines."""

    name = "none"

    def start(self, server: MockServer) -> dict:
        return {"runtime": self.name}

    def stop(self, server: MockServer) -> None:
        return None


# Imported by name when first used: the process runtime builds on this module.
RUNTIMES: dict[str, str] = {"none": "providers.mock.NoneRuntime", "process": "providers.mock_process.ProcessRuntime"}


def runtime_named(name: str) -> MockRuntime:
    try:
        module_name, class_name = RUNTIMES[name].rsplit(".", 1)
    except KeyError:
        raise ValueError(f"unknown Mock runtime {name!r} (known: {', '.join(RUNTIMES)})") from None
    return getattr(import_module(module_name), class_name)()


# --- The provider ---------------------------------------------------------------------------


class MockProvider(CloudProvider):
    code = "mock"

    def __init__(self, *, boot_delay_s: float = 0, deletion_delay_s: float = 0, runtime: str = "none",
                 clock: Clock | None = None):
        if boot_delay_s < 0 or deletion_delay_s < 0:
            raise ValueError("Mock delays cannot be negative")
        self.runtime = runtime_named(runtime)
        self.boot_delay = timedelta(seconds=boot_delay_s)
        self.deletion_delay = timedelta(seconds=deletion_delay_s)
        # Looked up at call time so a test that moves django.utils.timezone.now moves the Mock too.
        self._clock = clock or (lambda: timezone.now())

    def now(self) -> datetime:
        return self._clock()

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        """Create a stopped server, or return the live one this instance already has (a retry)."""
        instance_id = instance_id_from_tags(spec.tags) or spec.instance_id
        existing = self._live_server(instance_id) if spec.may_exist else None
        if existing is not None:
            return self._refresh_user_data(existing, spec)
        faults = _armed_faults(CREATE_FAULTS + (MockFault.Kind.SLOW_CREATE,), zone=spec.zone,
                               commercial_type=spec.commercial_type)
        fault = _consume_fault(faults, CREATE_FAULTS)
        if fault is not None:
            raise provider_error(
                fault.message or f"Mock cloud: {fault.get_kind_display().lower()} for {spec.commercial_type} "
                f"in {spec.zone}",
                permanent=fault.permanent or fault.kind in FAULT_CODES,
                code=FAULT_CODES.get(fault.kind),
            )
        if spec.commercial_type not in {offer.code for offer in MOCK_TYPES}:
            raise ProviderError(f"Mock cloud sells no {spec.commercial_type!r}")
        try:
            with _undoable():
                server = MockServer.objects.create(
                    zone=spec.zone, name=spec.name, commercial_type=spec.commercial_type, tags=list(spec.tags),
                    instance_id=instance_id or "", user_data=spec.user_data, runtime_env=dict(spec.runtime_env),
                    created_at=self.now(),
                )
        except IntegrityError:
            # Another worker created this instance's server a moment ago: that one is the answer.
            server = self._live_server(instance_id)
            if server is None:
                raise
        slow = _consume_fault(faults, (MockFault.Kind.SLOW_CREATE,))
        if slow is not None:
            # The server exists already; only the answer is late (a crash now leaves it unrecorded).
            time.sleep(slow.delay_s)
        return self._info(server)

    def start_server(self, server_id: str, *, zone: str) -> ServerInfo:
        """Power the server on and answer with it, as `get_server` would right after."""
        server = self._server(server_id, zone)
        if server is None:
            raise ProviderError(f"Mock cloud: server {server_id} does not exist in {zone}")
        if server.started_at is not None:
            return self._info(server)  # powered on already: a retry
        faults = _armed_faults(START_FAULTS, zone=zone, commercial_type=server.commercial_type)
        fault = _consume_fault(faults, (MockFault.Kind.START_FAILS,))
        if fault is not None:
            raise provider_error(fault.message or f"Mock cloud: power-on of {server_id} failed",
                                 permanent=fault.permanent)
        now = self.now()
        if _consume_fault(faults, (MockFault.Kind.START_FALLS_BACK,)) is not None:
            # The power-on is accepted, then the cloud takes the machine back: stopped when next looked at,
            # as Scaleway does when its stock runs out after a power-on.
            server.metadata = {**server.metadata, "state_detail": FELL_BACK_DETAIL}
            server.save(update_fields=["metadata"])
            return replace(self._info(server, now), state=ServerState.STARTING)
        server.started_at = now
        server.running_at = now + self.boot_delay
        metadata = {key: value for key, value in server.metadata.items() if key != "state_detail"}
        server.metadata = {**metadata, **self.runtime.start(server)}
        vanish = _consume_fault(faults, (MockFault.Kind.VANISH,))
        if vanish is not None:
            server.deleted_at = server.running_at + timedelta(seconds=vanish.delay_s)
        server.save(update_fields=["started_at", "running_at", "metadata", "deleted_at"])
        return self._info(server, now)

    def get_server(self, server_id: str, *, zone: str) -> ServerInfo | None:
        server = self._server(server_id, zone)
        return None if server is None else self._info(server)

    def list_servers(self, *, zone: str, tag: str = INVENTIV_TAG) -> list[ServerInfo]:
        now = self.now()
        rows = MockServer.objects.filter(zone=zone).filter(Q(deleted_at__isnull=True) | Q(deleted_at__gt=now))
        return [self._info(server, now) for server in rows if tag in server.tags]

    def terminate_server(self, server_id: str, *, zone: str) -> None:
        server = self._server(server_id, zone)
        if server is None or server.terminate_requested_at is not None:
            return  # gone already, or its deletion is under way: asking again changes nothing
        now = self.now()
        self._runtime_of(server).stop(server)
        MockServer.objects.filter(pk=server.pk, terminate_requested_at__isnull=True).update(
            terminate_requested_at=now,
            # A server that was due to vanish earlier keeps that earlier time.
            deleted_at=min(filter(None, [server.deleted_at, now + self.deletion_delay])),
        )

    def delete_volumes(self, server_id: str, *, zone: str) -> None:
        # Mock servers have one implicit volume; recording its deletion lets tests check nothing leaks.
        if _uuid_or_none(server_id) is not None:
            MockServer.objects.filter(pk=server_id, zone=zone, volumes_deleted_at__isnull=True).update(
                volumes_deleted_at=self.now()
            )

    def fetch_catalog(self, *, zones: list[str]) -> list[TypeOffer]:
        return [
            TypeOffer(**{**offer.__dict__, "availability": {zone: "available" for zone in zones}})
            for offer in MOCK_TYPES
        ]

    # --- helpers --------------------------------------------------------------------------

    def _server(self, server_id: str, zone: str) -> MockServer | None:
        if _uuid_or_none(server_id) is None:
            return None
        server = MockServer.objects.filter(pk=server_id, zone=zone).first()
        if server is None:
            return None
        if server.is_deleted(self.now()):
            # A deleted machine runs nothing: what a `vanish` fault left running stops when it is first seen.
            self._runtime_of(server).stop(server)
            return None
        return server

    def _runtime_of(self, server: MockServer) -> MockRuntime:
        return runtime_of(server, self.runtime)

    def _live_server(self, instance_id: str | None) -> MockServer | None:
        if not instance_id:
            return None
        return MockServer.objects.filter(instance_id=instance_id, deleted_at__isnull=True).first()

    def _refresh_user_data(self, server: MockServer, spec: ServerSpec) -> ServerInfo:
        # A retry mints fresh credentials: a server not yet powered on boots with the newest ones.
        if server.started_at is None:
            server.user_data, server.runtime_env = spec.user_data, dict(spec.runtime_env)
            server.save(update_fields=["user_data", "runtime_env_encrypted"])
        return self._info(server)

    def _info(self, server: MockServer, now: datetime | None = None) -> ServerInfo:
        state = server_state(server, now or self.now())
        return ServerInfo(
            server_id=str(server.pk), zone=server.zone, state=state, name=server.name, tags=list(server.tags),
            public_ip=server.public_ip if state != ServerState.GONE else None, created_at=server.created_at,
            commercial_type=server.commercial_type, metadata=dict(server.metadata),
        )


def server_state(server: MockServer, now: datetime) -> ServerState:
    """The state a Mock server is in at `now`, from its timestamps alone (whatever runs on it)."""
    if server.is_deleted(now):
        return ServerState.GONE
    if server.terminate_requested_at is not None:
        return ServerState.STOPPING
    if server.started_at is None:
        return ServerState.STOPPED
    if now < server.running_at:
        return ServerState.STARTING
    return ServerState.RUNNING


def runtime_of(server: MockServer, default: MockRuntime | None = None) -> MockRuntime:
    """The runtime that started `server` (it stops it, whatever this process is configured with)."""
    name = server.metadata.get("runtime")
    if default is not None and name in (None, default.name):
        return default
    return runtime_named(name or "none")


# --- Fault injection ------------------------------------------------------------------------


def _undoable():
    """Where a failing statement must leave the caller's transaction usable: a savepoint inside a transaction;
    nothing outside one, where a failed statement changes nothing (and BEGIN/COMMIT would cost two round trips)."""
    return transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext()


def _armed_faults(kinds, *, zone: str, commercial_type: str) -> list[MockFault]:
    """Faults of `kinds` that match a call and are not used up (one query for all the kinds a call needs).

    The table holds a handful of rows at most, so they are matched here: the query stays the cheapest to
    build, and it runs on every create and start."""
    return [
        fault for fault in MockFault.objects.filter(kind__in=kinds).order_by("id")
        if fault.zone in ("", zone) and fault.commercial_type in ("", commercial_type)
        and (fault.remaining is None or fault.remaining > 0)
    ]


def _consume_fault(faults: list[MockFault], kinds) -> MockFault | None:
    """The first of `faults` of one of `kinds`, used up once; None when there is none."""
    for fault in faults:
        if fault.kind not in kinds:
            continue
        if fault.remaining is None:
            return fault
        # Compare-and-set: when two workers race for the last use, only one of them fails.
        if MockFault.objects.filter(pk=fault.pk, remaining__gt=0).update(remaining=F("remaining") - 1):
            return fault
    return None


def inject_fault(kind: str, *, zone: str = "", commercial_type: str = "", remaining: int | None = 1,
                 permanent: bool = True, delay_s: float = 0, message: str = "") -> MockFault:
    """Arm a fault for the next `remaining` matching calls (None: every call until cleared)."""
    if kind not in MockFault.Kind.values:
        raise ValueError(f"unknown Mock fault {kind!r} (known: {', '.join(MockFault.Kind.values)})")
    return MockFault.objects.create(kind=kind, zone=zone, commercial_type=commercial_type, remaining=remaining,
                                    permanent=permanent, delay_s=delay_s, message=message)


def clear_faults() -> int:
    return MockFault.objects.all().delete()[0]


def vanish_server(server_id: str, *, clock: Clock | None = None) -> bool:
    """Delete a server behind Inventiv's back (as from the provider's console): it is gone at once, and what
    ran on it stops. True if it existed."""
    if _uuid_or_none(server_id) is None:
        return False
    now = (clock or timezone.now)()
    deleted = bool(
        MockServer.objects.filter(pk=server_id).filter(Q(deleted_at__isnull=True) | Q(deleted_at__gt=now))
        .update(deleted_at=now)
    )
    if deleted:
        server = MockServer.objects.get(pk=server_id)
        runtime_of(server).stop(server)
    return deleted


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
