"""The routing table: for each model code, the instances that may serve it, read from the database.

The router keeps one table in memory and swaps in a fresh one every refresh (router/runtime.py); the
request path only reads it. An instance is a candidate when it is `ready`, has an engine address and a
readable engine key, and its worker (if it has one) last said `ready`. It is routable when also fresh:
its last heartbeat is within heartbeat_interval_s x heartbeat_stale_missed. An instance with no worker at
all (the Mock `none` runtime) counts as fresh while it is ready: nothing else will ever vouch for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from django.utils import timezone

from catalog.models import LlmModel
from catalog.runtime_settings import get_setting
from instances.credentials import engine_api_key
from instances.models import Instance
from instances.status import Status
from monitoring.models import WorkerState
from router.upstream import Endpoint

log = logging.getLogger(__name__)

# Decrypting a Fernet token costs tens of microseconds; the table is rebuilt twice a second.
ENGINE_KEY_CACHE_SIZE = 4096
_warned: set = set()


@dataclass(frozen=True, slots=True)
class Candidate:
    instance_id: str
    base_url: str
    # `Bearer <engine key>`: what the router sends the engine. Clients never see it.
    authorization: str = field(repr=False)
    # The engine's queue at its last heartbeat (0 without a worker).
    waiting: int = 0
    fresh: bool = True
    # Where the upstream client connects, with the request head it sends, and the answer header naming the
    # instance (made from the fields above, once per table).
    endpoint: Endpoint = field(default=None, repr=False, compare=False)
    instance_header: tuple[bytes, bytes] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.endpoint is None:
            address = urlsplit(self.base_url)
            object.__setattr__(self, "endpoint", Endpoint.of(address.netloc.rsplit(":", 1)[0],
                                                              address.port or 80, self.authorization))
        object.__setattr__(self, "instance_header", (b"x-inventiv-instance", self.instance_id.encode()))


@dataclass(frozen=True)
class RoutingTable:
    # Model code -> every candidate, fresh or not (for inspection); `routable` keeps the fresh ones.
    candidates: dict[str, tuple[Candidate, ...]]
    # Every model code the catalog or a candidate knows: a request for any other code is a 404.
    known_models: frozenset[str]
    # Model code -> when its earliest candidate became ready (the `created` of /v1/models), Unix seconds.
    ready_since: dict[str, int] = field(default_factory=dict)
    # The catalog's embedding models (task `embed`): /v1/embeddings serves these, and only these.
    embedding_models: frozenset[str] = frozenset()
    routable: dict[str, tuple[Candidate, ...]] = field(init=False)

    def __post_init__(self) -> None:
        routable = {model: tuple(c for c in cands if c.fresh) for model, cands in self.candidates.items()}
        object.__setattr__(self, "routable", {model: cands for model, cands in routable.items() if cands})


    def without(self, instance_ids: set[str]) -> RoutingTable:
        """The same table less these instances (a drain pushed to the router, before the next reload)."""
        if not any(c.instance_id in instance_ids for cands in self.candidates.values() for c in cands):
            return self
        candidates = {model: tuple(c for c in cands if c.instance_id not in instance_ids)
                      for model, cands in self.candidates.items()}
        return RoutingTable(candidates={model: cands for model, cands in candidates.items() if cands},
                            known_models=self.known_models, ready_since=self.ready_since,
                            embedding_models=self.embedding_models)


EMPTY_TABLE = RoutingTable(candidates={}, known_models=frozenset())


def load_routing_table(*, now: datetime | None = None) -> RoutingTable:
    """Build the table from the database (synchronous: run it off the event loop)."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=get_setting("heartbeat_interval_s") * get_setting("heartbeat_stale_missed"))
    rows = list(
        Instance.objects.filter(status=Status.READY, model__isnull=False)
        .values_list("id", "model__code", "public_ip", "engine_port", "engine_api_key_encrypted", "ready_at")
    )
    workers = {
        state.instance_id: state
        for state in WorkerState.objects.filter(instance_id__in=[row[0] for row in rows]).only(
            "instance_id", "status", "last_heartbeat_at", "engine"
        )
    }
    candidates: dict[str, list[Candidate]] = {}
    ready_since: dict[str, int] = {}
    for instance_id, model, ip, port, encrypted, ready_at in rows:
        worker = workers.get(instance_id)
        if worker is not None and worker.status != WorkerState.WorkerStatus.READY:
            continue  # starting again, draining or in error: the worker says not to send traffic
        if not ip or not port:
            continue  # no engine address yet (or a Mock `none` machine, which has no engine)
        key = _engine_key(instance_id, encrypted)
        if key is None:
            continue
        fresh = worker is None or (worker.last_heartbeat_at is not None and now - worker.last_heartbeat_at <= stale_after)
        candidates.setdefault(model, []).append(Candidate(
            instance_id=str(instance_id),
            base_url=f"http://{_host(ip)}:{port}",
            authorization=f"Bearer {key}" if key else "",
            waiting=_waiting(worker),
            fresh=fresh,
        ))
        if ready_at is not None:
            since = int(ready_at.timestamp())
            ready_since[model] = min(since, ready_since.get(model, since))
    catalog = list(LlmModel.objects.values_list("code", "task"))
    known = {code for code, _ in catalog} | set(candidates)
    return RoutingTable(
        candidates={model: tuple(cands) for model, cands in candidates.items()},
        known_models=frozenset(known),
        ready_since=ready_since,
        embedding_models=frozenset(code for code, task in catalog if task == LlmModel.Task.EMBED),
    )


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _waiting(worker: WorkerState | None) -> int:
    if worker is None or not isinstance(worker.engine, dict):
        return 0
    waiting = worker.engine.get("waiting")
    return waiting if isinstance(waiting, int) and waiting > 0 else 0


def _engine_key(instance_id, encrypted: str) -> str | None:
    """The clear engine key; "" for an engine started without one; None (logged) when unreadable."""
    if not encrypted:
        return ""
    try:
        return _decrypt(instance_id, encrypted)
    except ValueError as exc:
        if instance_id not in _warned:  # the table is rebuilt twice a second: say it once
            _warned.add(instance_id)
            log.warning("instance %s skipped by the router: %s", instance_id, exc)
        return None


@lru_cache(maxsize=ENGINE_KEY_CACHE_SIZE)
def _decrypt(instance_id, encrypted: str) -> str:
    # engine_api_key() reads only these two fields; an unsaved stand-in avoids loading the whole row.
    return engine_api_key(Instance(pk=instance_id, engine_api_key_encrypted=encrypted))
