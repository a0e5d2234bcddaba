"""Read queries over instances: listings, one instance with its timeline, counts, and create-form options."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from catalog.models import InstanceType, LlmModel, Provider, Zone
from catalog.services import compatible_models
from instances.models import Instance
from instances.status import LIVE, Status
from instances.freshness import stale_after_s
from monitoring.heartbeats import heartbeat_age_s
from monitoring.models import ActionLog, HeartbeatSample, WorkerState
from monitoring.selectors import instance_timeline, with_action_types


def instances() -> QuerySet[Instance]:
    """Every instance with its placement loaded, newest first."""
    return Instance.objects.select_related("provider", "zone", "instance_type", "model", "created_by")


def active_instances() -> QuerySet[Instance]:
    return instances().exclude(status=Status.ARCHIVED)


def archived_instances() -> QuerySet[Instance]:
    return instances().filter(status=Status.ARCHIVED).order_by("-archived_at", "-created_at")


def timeline(instance: Instance) -> list[ActionLog]:
    """The action logs of `instance`, oldest first, each with its action type (label, colour)."""
    return with_action_types(instance_timeline(instance.pk))


def status_counts() -> dict:
    """How many instances are in each status (every status listed), all of them, the active ones (live:
    requested, starting, serving or draining; never terminated or failed) and those the list shows (not
    archived)."""
    by_status = dict.fromkeys(Status.values, 0)
    for row in Instance.objects.order_by().values("status").annotate(rows=Count("*")):
        by_status[row["status"]] = row["rows"]
    total = sum(by_status.values())
    return {"total": total, "active": sum(by_status[status] for status in LIVE),
            "listed": total - by_status[Status.ARCHIVED], "by_status": by_status}


# --- Create form ----------------------------------------------------------------------------
# The form offers only what a request can get: active zones of active providers, the active types
# offered in the chosen zone, and the active models those types can serve. The service still checks
# everything, since the catalog can change between the page load and the click.


def offered_zones() -> QuerySet[Zone]:
    """Zones a machine can be rented in (hosts you run yourself are registered instead: instances/hosts.py)."""
    return (
        Zone.objects.filter(active=True, region__active=True, region__provider__active=True)
        .exclude(region__provider__adapter=Provider.Adapter.STATIC)
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


def catalog_instance_types() -> list[str]:
    """The GPU type codes a host you run yourself may be registered with (each code once)."""
    return sorted(set(InstanceType.objects.filter(active=True).values_list("code", flat=True)))


def active_models() -> QuerySet[LlmModel]:
    return LlmModel.objects.filter(active=True).order_by("code")


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

# The detail page's GPU charts cover this much time.
WORKER_CHART_WINDOW = timedelta(hours=1)


def heartbeat_samples(instance_id, *, now: datetime | None = None) -> list[HeartbeatSample]:
    """The instance's heartbeat samples (raw and minute averages) of the last hour, oldest first."""
    since = (now or timezone.now()) - WORKER_CHART_WINDOW
    return list(HeartbeatSample.objects.filter(instance_id=instance_id, at__gte=since).order_by("at", "id"))


def worker_status(instance: Instance, *, now: datetime | None = None) -> dict:
    """The instance's worker: its latest state (None before it reports), the engine's gauges, the heartbeat's
    age in seconds, whether it is fresh, and the samples of the last hour."""
    now = now or timezone.now()
    state = WorkerState.objects.filter(instance_id=instance.pk).first()
    age = heartbeat_age_s(state, now=now)
    return {
        "state": state,
        "engine": (state.engine or {}) if state is not None else {},
        "age_s": age,
        "fresh": age is not None and age <= stale_after_s(),
        "samples": heartbeat_samples(instance.pk, now=now) if state is not None else [],
    }


def with_heartbeats(rows: Iterable[Instance], *, now: datetime | None = None) -> list[Instance]:
    """The rows, each with `heartbeat_age_s` (None when no heartbeat), `heartbeat_fresh` and `worker_status`
    (None before the worker reports): one query for all."""
    rows = list(rows)
    now = now or timezone.now()
    states = {state.instance_id: state for state in WorkerState.objects.filter(instance_id__in=[r.pk for r in rows])
              .only("instance_id", "last_heartbeat_at", "status")}
    stale_after = stale_after_s() if states else 0
    for instance in rows:
        age = heartbeat_age_s(states.get(instance.pk), now=now)
        instance.heartbeat_age_s = age
        instance.heartbeat_fresh = age is not None and age <= stale_after
        instance.worker_status = states[instance.pk].status if instance.pk in states else None
    return rows
