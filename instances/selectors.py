"""Read queries over instances: listings, one instance with its timeline, counts, and create-form options."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from catalog.models import InstanceType, LlmModel, Zone
from catalog.services import compatible_models
from instances.freshness import is_worker_fresh, stale_after_s
from instances.lifecycle import can_transition
from instances.models import Instance
from instances.status import ENDED, TERMINABLE, Status
from monitoring.heartbeats import heartbeat_age_s
from monitoring.models import ActionLog, HeartbeatSample, WorkerState
from monitoring.selectors import instance_timeline, with_action_types

# How far along its way to serving (or to being gone) an instance in each status is, for progress bars.
PROGRESS_PERCENT = {
    Status.PROVISIONING: 10,
    Status.BOOTING: 30,
    Status.INSTALLING: 50,
    Status.STARTING: 70,
    Status.READY: 100,
    Status.DRAINING: 100,
    Status.TERMINATING: 50,
    Status.TERMINATED: 100,
    Status.ARCHIVED: 100,
    Status.PROVISIONING_FAILED: 0,
    Status.STARTUP_FAILED: 0,
    Status.FAILED: 0,
}
SHORT_ID_LENGTH = 8


def progress_percent(status: str) -> int:
    return PROGRESS_PERCENT.get(status, 0)


def instances() -> QuerySet[Instance]:
    """Every instance with its placement loaded, newest first."""
    return Instance.objects.select_related("provider", "zone", "instance_type", "model", "created_by")


def active_instances() -> QuerySet[Instance]:
    return instances().exclude(status=Status.ARCHIVED)


def archived_instances() -> QuerySet[Instance]:
    return instances().filter(status=Status.ARCHIVED).order_by("-archived_at", "-created_at")


def with_presentation(rows: Iterable[Instance]) -> list[Instance]:
    """The rows, each with what the dashboard shows beside the model: progress, short id, allowed actions."""
    rows = list(rows)
    for instance in rows:
        instance.progress_percent = progress_percent(instance.status)
        instance.short_id = str(instance.pk)[:SHORT_ID_LENGTH]
        instance.dom_id = f"instance-{instance.pk}"
        instance.can_terminate = instance.status in TERMINABLE
        instance.can_archive = can_transition(instance.status, Status.ARCHIVED)
        instance.can_drain = instance.status == Status.READY
    return rows


def present(instance: Instance) -> Instance:
    return with_presentation([instance])[0]


def timeline(instance: Instance) -> list[ActionLog]:
    """The action logs of `instance`, oldest first, each with its action type (label, colour)."""
    return with_action_types(instance_timeline(instance.pk))


def status_counts() -> dict:
    """How many instances are in each status (every status listed), all of them, and those not archived."""
    by_status = dict.fromkeys(Status.values, 0)
    for row in Instance.objects.order_by().values("status").annotate(rows=Count("*")):
        by_status[row["status"]] = row["rows"]
    total = sum(by_status.values())
    return {"total": total, "active": total - by_status[Status.ARCHIVED], "by_status": by_status}


# --- Create form ----------------------------------------------------------------------------
# The form offers only what a request can get: active zones of active providers, the active types
# offered in the chosen zone, and the active models those types can serve. The service still checks
# everything, since the catalog can change between the page load and the click.


def offered_zones() -> QuerySet[Zone]:
    return (
        Zone.objects.filter(active=True, region__active=True, region__provider__active=True)
        .filter(type_offers__instance_type__active=True)
        .select_related("region__provider")
        .distinct()
        .order_by("region__provider__code", "code")
    )


def offered_instance_types(zone: Zone | None) -> QuerySet[InstanceType]:
    if zone is None:
        return InstanceType.objects.none()
    return (
        InstanceType.objects.filter(active=True, zone_offers__zone=zone, provider=zone.region.provider)
        .select_related("provider")
        .order_by("cost_per_hour", "code")
    )


def offered_models(instance_type: InstanceType | None) -> QuerySet[LlmModel]:
    if instance_type is None:
        return LlmModel.objects.none()
    return compatible_models(instance_type).filter(active=True).order_by("code")


def _by_pk(queryset: QuerySet, raw):
    """The row of `queryset` whose primary key is `raw` (a form value), or None."""
    try:
        pk = int(raw)
    except (TypeError, ValueError):
        return None
    return queryset.filter(pk=pk).first()


def chosen_zone(raw) -> Zone | None:
    return _by_pk(Zone.objects.select_related("region__provider"), raw)


def chosen_instance_type(raw) -> InstanceType | None:
    return _by_pk(InstanceType.objects.select_related("provider"), raw)


def chosen_model(raw) -> LlmModel | None:
    return _by_pk(LlmModel.objects.all(), raw)


def request_codes(*, zone_id, instance_type_id, model_id) -> dict[str, str | None]:
    """The codes `request_instance` takes, for what the create form posted (ids; None where nothing valid)."""
    zone, instance_type, model = chosen_zone(zone_id), chosen_instance_type(instance_type_id), chosen_model(model_id)
    return {
        "provider": zone.region.provider.code if zone else None,
        "zone": zone.code if zone else None,
        "instance_type": instance_type.code if instance_type else None,
        "model": model.code if model else None,
    }


# --- Worker status (heartbeats) -------------------------------------------------------------

WORKER_CHART_WINDOW = timedelta(hours=1)
# The four GPU charts of the detail page: (key, HeartbeatSample field, title, unit).
WORKER_CHARTS = (
    ("utilization", "gpu_utilization_pct", "GPU utilisation", "%"),
    ("memory", "gpu_memory_used_mb", "GPU memory", "MB"),
    ("temperature", "gpu_temperature_c", "GPU temperature", "°C"),
    ("power", "gpu_power_w", "GPU power", "W"),
)


def age_label(seconds: float | None) -> str:
    """"3 s ago", "4 min ago", "2 h ago"; "—" when there is no heartbeat."""
    if seconds is None:
        return "—"
    seconds = max(seconds, 0)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


def heartbeat_samples(instance_id, *, now: datetime | None = None) -> list[HeartbeatSample]:
    """The instance's heartbeat samples (raw and minute averages) of the last hour, oldest first."""
    since = (now or timezone.now()) - WORKER_CHART_WINDOW
    return list(HeartbeatSample.objects.filter(instance_id=instance_id, at__gte=since).order_by("at", "id"))


def _chart_series(samples: list[HeartbeatSample]) -> dict:
    """{times: [iso...], <key>: {label, unit, values: [...]}} for the detail page's GPU charts."""
    series = {"times": [sample.at.isoformat() for sample in samples]}
    for key, field, title, unit in WORKER_CHARTS:
        series[key] = {"label": title, "unit": unit, "values": [getattr(sample, field) for sample in samples]}
    return series


def worker_status(instance: Instance, *, now: datetime | None = None) -> dict:
    """What the detail page shows of the instance's worker: its state, heartbeat age, freshness, charts."""
    now = now or timezone.now()
    state = WorkerState.objects.filter(instance_id=instance.pk).first()
    samples = heartbeat_samples(instance.pk, now=now) if state is not None else []
    engine = (state.engine or {}) if state is not None else {}
    kv = engine.get("kv_cache_usage")
    return {
        "state": state,
        "engine": engine,
        "kv_cache_pct": None if kv is None else kv * 100,
        "age_s": heartbeat_age_s(state, now=now),
        "age_label": age_label(heartbeat_age_s(state, now=now)),
        "fresh": state is not None and is_worker_fresh(instance.pk, now=now),
        "samples": samples,
        "charts": _chart_series(samples),
        "finished": instance.status in ENDED,
    }


def with_heartbeats(rows: Iterable[Instance], *, now: datetime | None = None) -> list[Instance]:
    """The rows, each with `heartbeat_age_s` (None when no heartbeat) and `heartbeat_fresh`: one query for all."""
    rows = list(rows)
    now = now or timezone.now()
    states = {state.instance_id: state for state in WorkerState.objects.filter(instance_id__in=[r.pk for r in rows])
              .only("instance_id", "last_heartbeat_at")}
    stale_after = stale_after_s() if states else 0
    for instance in rows:
        age = heartbeat_age_s(states.get(instance.pk), now=now)
        instance.heartbeat_age_s = age
        instance.heartbeat_age_label = age_label(age)
        instance.heartbeat_fresh = age is not None and age <= stale_after
    return rows
