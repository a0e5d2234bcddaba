"""Read queries of the autoscaling app: pool members, their load signals, and the router's pool directory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from autoscaling.models import Pool, PoolChoice, PoolSample
from catalog.models import InstanceTypeZone
from catalog.runtime_settings import get_setting
from instances.models import Instance
from instances.status import COMING_UP, ENDED, LIVE, Status
from monitoring.models import ActionLog, WorkerState

# Requests the router reported holding count as load only this long after the report.
HELD_FRESH_S = 15


@dataclass(frozen=True)
class PoolLoad:
    ready: list[Instance]
    starting: list[Instance]
    draining: list[Instance]
    # Instance id -> its worker's latest state (fresh heartbeats only).
    workers: dict
    in_flight: int
    waiting: int
    held: int
    ttft_p95_s: float | None
    kv_cache_usage: float | None

    @property
    def size(self) -> int:
        return len(self.ready) + len(self.starting)


def pool_load(pool: Pool, *, now: datetime | None = None) -> PoolLoad:
    """The pool's members by phase and its load, read from their workers' latest heartbeats."""
    now = now or timezone.now()
    members = list(pool.instances.filter(status__in=LIVE).select_related("provider", "zone", "instance_type"))
    ready = [m for m in members if m.status == Status.READY]
    stale_after = timedelta(seconds=get_setting("heartbeat_interval_s") * get_setting("heartbeat_stale_missed"))
    workers = {
        state.instance_id: state
        for state in WorkerState.objects.filter(instance_id__in=[m.pk for m in ready])
        if state.last_heartbeat_at is not None and now - state.last_heartbeat_at <= stale_after
    }
    running = waiting = 0
    ttfts, kvs = [], []
    for state in workers.values():
        engine = state.engine if isinstance(state.engine, dict) else {}
        # The engine's own gauges; an agent that could not read them still reports its in-flight total.
        running += _count(engine.get("running")) if engine.get("running") is not None else state.in_flight
        waiting += _count(engine.get("waiting"))
        if isinstance(engine.get("ttft_p95_s"), (int, float)):
            ttfts.append(float(engine["ttft_p95_s"]))
        if isinstance(engine.get("kv_cache_usage"), (int, float)):
            kvs.append(float(engine["kv_cache_usage"]))
    held_fresh = pool.held_at is not None and now - pool.held_at <= timedelta(seconds=HELD_FRESH_S)
    return PoolLoad(
        ready=ready,
        starting=[m for m in members if m.status in COMING_UP],
        draining=[m for m in members if m.status == Status.DRAINING],
        workers=workers,
        in_flight=running,
        waiting=waiting,
        held=pool.held_requests if held_fresh else 0,
        ttft_p95_s=max(ttfts) if ttfts else None,
        kv_cache_usage=max(kvs) if kvs else None,
    )


def pools_for_routing() -> dict[str, dict]:
    """The router's pool directory (settings.ROUTER_POOL_DIRECTORY): model code -> the pool that may grow
    to serve it, with its hold limits. One pool per model: the enabled one with the largest max size."""
    directory: dict[str, dict] = {}
    for pool in Pool.objects.filter(enabled=True, max_size__gt=0).select_related("model").order_by("max_size", "pk"):
        directory[pool.model.code] = {
            "pool": pool.name,
            "pool_id": pool.pk,
            "can_grow": True,
            "hold_timeout_s": float(pool.hold_timeout_s),
            "queue_size": pool.hold_queue_size,
        }
    return directory


def _count(value) -> int:
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def sizes_for_metrics() -> list[dict]:
    """Per enabled or disabled pool: members by phase, desired size and held requests (for /metrics)."""
    now = timezone.now()
    counts: dict[int, dict[str, int]] = {}
    for pool_id, status in Instance.objects.filter(pool__isnull=False, status__in=LIVE).values_list("pool_id", "status"):
        phase = "ready" if status == Status.READY else "draining" if status == Status.DRAINING else "starting"
        counts.setdefault(pool_id, {"ready": 0, "starting": 0, "draining": 0})[phase] += 1
    rows = []
    for pool in Pool.objects.only("pk", "name", "desired_size", "held_requests", "held_at"):
        held_fresh = pool.held_at is not None and now - pool.held_at <= timedelta(seconds=HELD_FRESH_S)
        rows.append({"pool": pool.name, "desired": pool.desired_size, "held": pool.held_requests if held_fresh else 0,
                     "members": counts.get(pool.pk, {"ready": 0, "starting": 0, "draining": 0})})
    return rows


# --- Pools pages and API --------------------------------------------------------------------

# Recent decisions are looked for among this many newest samples (a few hours of ticks).
POOL_DECISION_SCAN = 500
POOL_DECISIONS_SHOWN = 20
# The most samples one history answer holds (a day of ticks every 15 s is 5,760).
POOL_SAMPLES_MAX = 6_000
# The latest sample's fields a pool row shows (its load and SLO signals).
POOL_SIGNALS = ("at", "in_flight", "waiting", "held", "ttft_p95_s", "kv_cache_usage")


def _pool_latest(field: str) -> Subquery:
    return Subquery(PoolSample.objects.filter(pool=OuterRef("pk")).order_by("-at").values(field)[:1])


def _pool_members_in(statuses) -> Count:
    return Count("instances", filter=Q(instances__status__in=list(statuses)))


def pool_rows() -> QuerySet[Pool]:
    """Pools with their model and choices, members counted by phase (`ready_count`, `starting_count`,
    `draining_count`, and `size`: ready + starting), the latest sample's signals (`latest_at`,
    `latest_in_flight`, ...) and `load` (in flight + waiting + held at the latest sample, None before the first)."""
    choices = PoolChoice.objects.select_related("instance_type__provider", "zone").order_by("position")
    return (
        Pool.objects.select_related("model")
        .prefetch_related(Prefetch("choices", queryset=choices))
        .annotate(
            ready_count=_pool_members_in({Status.READY}),
            starting_count=_pool_members_in(COMING_UP),
            draining_count=_pool_members_in({Status.DRAINING}),
            **{f"latest_{field}": _pool_latest(field) for field in POOL_SIGNALS},
        )
        .annotate(
            size=F("ready_count") + F("starting_count"),
            load=F("latest_in_flight") + F("latest_waiting") + F("latest_held"),
        )
        .order_by("name")  # Meta.ordering does not apply to a grouped (counted) query
    )


def pool_list() -> list[Pool]:
    return list(pool_rows())


def pool_by_name(name: str) -> Pool | None:
    return pool_rows().filter(name=name).first()


def pool_members(pool: Pool) -> list[Instance]:
    """The pool's live instances (not terminated, archived or refused), oldest first."""
    rows = pool.instances.exclude(status__in=ENDED).select_related("instance_type", "zone", "model")
    return list(rows.order_by("created_at"))


def pool_samples(pool: Pool, *, minutes: int, now: datetime | None = None) -> list[PoolSample]:
    """The pool's samples of the last `minutes`, oldest first (at most POOL_SAMPLES_MAX, the newest)."""
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    newest = PoolSample.objects.filter(pool=pool, at__gte=since).order_by("-at")[:POOL_SAMPLES_MAX]
    return list(reversed(newest))


def pool_decisions(pool: Pool, *, limit: int = POOL_DECISIONS_SHOWN) -> list[PoolSample]:
    """Samples where the autoscaler changed its mind, newest first: its reason or desired size differs from
    the tick before, or the pool just fell short of (or above) the desired size."""
    samples = list(reversed(PoolSample.objects.filter(pool=pool).order_by("-at")[:POOL_DECISION_SCAN]))
    decisions, previous = [], None
    for sample in samples:
        if (
            previous is None
            or sample.reason != previous.reason
            or sample.desired != previous.desired
            or (sample.desired != sample.size and previous.desired == previous.size)
        ):
            decisions.append(sample)
        previous = sample
    return decisions[::-1][:limit]


def pool_decision_logs(pool: Pool, *, limit: int = POOL_DECISIONS_SHOWN) -> list[ActionLog]:
    """The pool's SCALE_DECISION action-log rows, newest first: the autoscaler's and the operators'."""
    rows = ActionLog.objects.filter(action_type="SCALE_DECISION", metadata__pool=pool.name).select_related("user")
    return list(rows.order_by("-created_at", "-id")[:limit])


def pool_offers() -> QuerySet[InstanceTypeZone]:
    """The (instance type, zone) offers a pool may choose from: active types in active zones of active
    providers, by provider, then cheapest first."""
    return (
        InstanceTypeZone.objects.filter(
            instance_type__active=True, instance_type__provider__active=True, zone__active=True,
            zone__region__active=True,
        )
        .select_related("instance_type__provider", "zone")
        .order_by("instance_type__provider__name", "instance_type__cost_per_hour", "instance_type__code", "zone__code")
    )
