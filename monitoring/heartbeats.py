"""Worker registrations and heartbeats: validation, the narrow latest-state row, samples and retention.

Validation is hand-written rather than a DRF serializer because this is the hottest write path of the
control plane (thousands of workers every few seconds): it checks types and bounds in one pass and
reports every bad field with its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import connections, transaction
from django.db.models import Avg, F, Max
from django.db.models.functions import TruncMinute
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from monitoring.models import HeartbeatSample, WorkerState

WORKER_STATUSES = frozenset(WorkerState.WorkerStatus.values)
# Bounds that no real machine exceeds: anything beyond is a bug or an attack, not a reading.
MAX_GPUS = 64
MAX_IN_FLIGHT = 1_000_000
MAX_MEMORY_MB = 64 * 1024 * 1024  # 64 TiB
MAX_TEMPERATURE_C = 200
MAX_POWER_W = 10_000
MAX_LATENCY_S = 3600
MAX_COUNTER = 10**15
MAX_LOG_LINES = 200
MAX_TEXT = 2000
# Retention: raw samples for this long, then one-minute averages for this long.
RAW_RETENTION = timedelta(hours=2)
MINUTE_RETENTION = timedelta(days=7)
MINUTE = 60


class PayloadInvalid(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in errors.items()))
        self.errors = errors


class _Checker:
    """Collects every field error instead of stopping at the first one."""

    def __init__(self, payload):
        if not isinstance(payload, dict):
            raise PayloadInvalid({"body": "must be a JSON object"})
        self.payload = payload
        self.errors: dict[str, str] = {}

    def number(self, obj: dict, key: str, path: str, *, low: float = 0, high: float, integer=False, required=False):
        value = obj.get(key)
        if value is None:
            if required:
                self.errors[path] = "is required"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            self.errors[path] = "must be a number"
            return None
        if integer and not float(value).is_integer():
            self.errors[path] = "must be an integer"
            return None
        if not low <= value <= high:
            self.errors[path] = f"must be between {low:g} and {high:g}"
            return None
        return int(value) if integer else float(value)

    def text(self, obj: dict, key: str, path: str, *, required=False, max_length=MAX_TEXT, choices=None):
        value = obj.get(key)
        if value is None or value == "":
            if required:
                self.errors[path] = "is required"
            return ""
        if not isinstance(value, str):
            self.errors[path] = "must be a string"
            return ""
        if len(value) > max_length:
            self.errors[path] = f"must be at most {max_length} characters"
            return ""
        if choices is not None and value not in choices:
            self.errors[path] = f"must be one of {', '.join(sorted(choices))}"
            return ""
        return value

    def mapping(self, key: str) -> dict:
        value = self.payload.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.errors[key] = "must be an object"
            return {}
        return value

    def done(self):
        if self.errors:
            raise PayloadInvalid(self.errors)


@dataclass(frozen=True)
class Registration:
    instance_id: str
    agent_version: str
    engine_version: str
    model: str
    agent_port: int | None
    engine_port: int | None
    gpus: list[dict]
    host: dict


@dataclass(frozen=True)
class Heartbeat:
    instance_id: str
    status: str
    reason: str
    model: str
    sent_at: datetime | None
    in_flight: int
    engine: dict
    gpus: list[dict]
    host: dict
    engine_log_tail: list[str] = field(default_factory=list)


def _gpus(check: _Checker, *, readings: bool) -> list[dict]:
    raw = check.payload.get("gpus")
    if raw is None:
        return []
    if not isinstance(raw, list):
        check.errors["gpus"] = "must be a list"
        return []
    if len(raw) > MAX_GPUS:
        check.errors["gpus"] = f"must list at most {MAX_GPUS} GPUs"
        return []
    gpus = []
    for index, gpu in enumerate(raw):
        path = f"gpus[{index}]"
        if not isinstance(gpu, dict):
            check.errors[path] = "must be an object"
            continue
        clean = {
            "index": check.number(gpu, "index", f"{path}.index", high=MAX_GPUS, integer=True),
            "name": check.text(gpu, "name", f"{path}.name", max_length=100),
            "memory_total_mb": check.number(gpu, "memory_total_mb", f"{path}.memory_total_mb", high=MAX_MEMORY_MB),
        }
        if readings:
            clean.update(
                utilization_pct=check.number(gpu, "utilization_pct", f"{path}.utilization_pct", high=100),
                memory_used_mb=check.number(gpu, "memory_used_mb", f"{path}.memory_used_mb", high=MAX_MEMORY_MB),
                temperature_c=check.number(gpu, "temperature_c", f"{path}.temperature_c", low=-50, high=MAX_TEMPERATURE_C),
                power_w=check.number(gpu, "power_w", f"{path}.power_w", high=MAX_POWER_W),
                power_limit_w=check.number(gpu, "power_limit_w", f"{path}.power_limit_w", high=MAX_POWER_W),
            )
        gpus.append(clean)
    return gpus


def _port(check: _Checker, key: str):
    return check.number(check.payload, key, key, low=1, high=65535, integer=True)


def validate_registration(payload) -> Registration:
    check = _Checker(payload)
    host = check.mapping("host")
    registration = Registration(
        instance_id=check.text(payload, "instance_id", "instance_id", required=True, max_length=64),
        agent_version=check.text(payload, "agent_version", "agent_version", max_length=50),
        engine_version=check.text(payload, "engine_version", "engine_version", max_length=50),
        model=check.text(payload, "model", "model", max_length=200),
        agent_port=_port(check, "agent_port"),
        engine_port=_port(check, "engine_port"),
        gpus=_gpus(check, readings=False),
        host={
            "hostname": check.text(host, "hostname", "host.hostname", max_length=255),
            "cpu_count": check.number(host, "cpu_count", "host.cpu_count", high=4096, integer=True),
            "memory_total_mb": check.number(host, "memory_total_mb", "host.memory_total_mb", high=MAX_MEMORY_MB),
        },
    )
    check.done()
    return registration


ENGINE_LATENCIES = ("ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s")
ENGINE_COUNTERS = ("prompt_tokens_total", "generation_tokens_total", "requests_total", "preemptions_total",
                   "prefix_cache_queries_total", "prefix_cache_hits_total")


def validate_heartbeat(payload) -> Heartbeat:
    check = _Checker(payload)
    engine_in, host_in = check.mapping("engine"), check.mapping("host")
    engine = {
        "running": check.number(engine_in, "running", "engine.running", high=MAX_IN_FLIGHT),
        "waiting": check.number(engine_in, "waiting", "engine.waiting", high=MAX_IN_FLIGHT),
        "kv_cache_usage": check.number(engine_in, "kv_cache_usage", "engine.kv_cache_usage", high=1),
        "prefix_cache_hit_rate": check.number(engine_in, "prefix_cache_hit_rate", "engine.prefix_cache_hit_rate",
                                              high=1),
    }
    for key in ENGINE_LATENCIES:
        engine[key] = check.number(engine_in, key, f"engine.{key}", high=MAX_LATENCY_S)
    for key in ENGINE_COUNTERS:
        engine[key] = check.number(engine_in, key, f"engine.{key}", high=MAX_COUNTER)
    host = {
        "cpu_pct": check.number(host_in, "cpu_pct", "host.cpu_pct", high=100 * 4096),
        "memory_used_mb": check.number(host_in, "memory_used_mb", "host.memory_used_mb", high=MAX_MEMORY_MB),
        "memory_total_mb": check.number(host_in, "memory_total_mb", "host.memory_total_mb", high=MAX_MEMORY_MB),
        "disk_used_gb": check.number(host_in, "disk_used_gb", "host.disk_used_gb", high=10**7),
        "disk_total_gb": check.number(host_in, "disk_total_gb", "host.disk_total_gb", high=10**7),
        "net_rx_bytes": check.number(host_in, "net_rx_bytes", "host.net_rx_bytes", high=MAX_COUNTER),
        "net_tx_bytes": check.number(host_in, "net_tx_bytes", "host.net_tx_bytes", high=MAX_COUNTER),
    }
    sent_at = None
    raw_sent = payload.get("sent_at")
    if raw_sent is not None:
        sent_at = parse_datetime(raw_sent) if isinstance(raw_sent, str) else None
        if sent_at is None:
            check.errors["sent_at"] = "must be an ISO-8601 date-time"
    tail = payload.get("engine_log_tail") or []
    if not isinstance(tail, list) or not all(isinstance(line, str) for line in tail):
        check.errors["engine_log_tail"] = "must be a list of strings"
        tail = []
    heartbeat = Heartbeat(
        instance_id=check.text(payload, "instance_id", "instance_id", required=True, max_length=64),
        status=check.text(payload, "status", "status", required=True, choices=WORKER_STATUSES),
        reason=check.text(payload, "reason", "reason"),
        model=check.text(payload, "model", "model", max_length=200),
        sent_at=sent_at,
        in_flight=check.number(payload, "in_flight", "in_flight", high=MAX_IN_FLIGHT, integer=True) or 0,
        engine=engine,
        gpus=_gpus(check, readings=True),
        host=host,
        engine_log_tail=[line[:500] for line in tail[-MAX_LOG_LINES:]],
    )
    check.done()
    return heartbeat


def record_registration(instance_id, registration: Registration, *, now: datetime | None = None) -> WorkerState:
    now = now or timezone.now()
    state, _ = WorkerState.objects.update_or_create(
        instance_id=instance_id,
        defaults={
            "registered_at": now,
            "agent_version": registration.agent_version,
            "engine_version": registration.engine_version,
            "model": registration.model,
            "gpus": registration.gpus,
            "host": registration.host,
            "status": WorkerState.WorkerStatus.STARTING,
        },
    )
    return state


def _mean(values):
    values = [value for value in values if value is not None]
    return sum(values) / len(values) if values else None


LATEST_FIELDS = ("last_heartbeat_at", "status", "reason", "model", "in_flight", "engine", "gpus", "host",
                 "engine_log_tail")
SAMPLE_FIELDS = ("at", "status", "in_flight", "running", "waiting", "kv_cache_usage", "ttft_p95_s",
                 "gpu_utilization_pct", "gpu_memory_used_mb", "gpu_temperature_c", "gpu_power_w", "cpu_pct",
                 "memory_used_mb")


def record_heartbeat(instance_id, heartbeat: Heartbeat, *, now: datetime | None = None) -> None:
    """Update the worker's latest state and append one sample (no read).

    On PostgreSQL both writes are one statement (the UPDATE feeds the INSERT): this runs for every
    heartbeat of every machine, and one round trip and one commit instead of four costs the web process
    and the database about half as much CPU (bench/heartbeats.py). Elsewhere, or for a worker without a
    state row yet, the two writes run in one transaction through the ORM.
    """
    now = now or timezone.now()
    gpus, engine, host = heartbeat.gpus, heartbeat.engine, heartbeat.host
    latest = {
        "last_heartbeat_at": now,
        "status": heartbeat.status,
        "reason": heartbeat.reason,
        "model": heartbeat.model,
        "in_flight": heartbeat.in_flight,
        "engine": engine,
        "gpus": gpus,
        "host": host,
        "engine_log_tail": heartbeat.engine_log_tail,
    }
    sample = {
        "at": now,
        "status": heartbeat.status,
        "in_flight": heartbeat.in_flight,
        "running": engine.get("running"),
        "waiting": engine.get("waiting"),
        "kv_cache_usage": engine.get("kv_cache_usage"),
        "ttft_p95_s": engine.get("ttft_p95_s"),
        "gpu_utilization_pct": _mean(gpu.get("utilization_pct") for gpu in gpus),
        "gpu_memory_used_mb": sum(gpu.get("memory_used_mb") or 0 for gpu in gpus) if gpus else None,
        "gpu_temperature_c": max((gpu["temperature_c"] for gpu in gpus if gpu.get("temperature_c") is not None),
                                 default=None),
        "gpu_power_w": sum(gpu.get("power_w") or 0 for gpu in gpus) if gpus else None,
        "cpu_pct": host.get("cpu_pct"),
        "memory_used_mb": host.get("memory_used_mb"),
    }
    connection = connections[WorkerState.objects.db]
    if connection.vendor == "postgresql" and _record_in_one_statement(connection, instance_id, latest, sample):
        return
    with transaction.atomic():
        updated = WorkerState.objects.filter(instance_id=instance_id).update(heartbeats=F("heartbeats") + 1, **latest)
        if not updated:
            WorkerState.objects.create(instance_id=instance_id, heartbeats=1, **latest)
        HeartbeatSample.objects.create(instance_id=instance_id, **sample)


def _record_in_one_statement(connection, instance_id, latest: dict, sample: dict) -> bool:
    """Both writes in one PostgreSQL statement; False (nothing written) when the worker has no state row."""

    def prepared(model, names: tuple[str, ...], values: dict) -> list:
        return [field.get_db_prep_save(values[field.name], connection) for field in _fields(model, names)]

    key = WorkerState._meta.pk.get_db_prep_save(instance_id, connection)
    params = [*prepared(WorkerState, LATEST_FIELDS, latest), key, HeartbeatSample.RAW,
              *prepared(HeartbeatSample, SAMPLE_FIELDS, sample)]
    with connection.cursor() as cursor:
        cursor.execute(_one_statement_sql(connection.ops.quote_name), params)
        return cursor.rowcount == 1


@lru_cache(maxsize=2)
def _fields(model, names: tuple[str, ...]) -> list:
    return [model._meta.get_field(name) for name in names]


@lru_cache(maxsize=1)
def _one_statement_sql(quote) -> str:
    state, samples = WorkerState._meta, HeartbeatSample._meta

    def column(meta, name):
        return quote(meta.get_field(name).column)

    assignments = ", ".join(f"{column(state, name)} = %s" for name in LATEST_FIELDS)
    heartbeats, key = column(state, "heartbeats"), column(state, "instance_id")
    sample_columns = ", ".join(column(samples, name) for name in ("instance_id", "resolution_s", *SAMPLE_FIELDS))
    return (
        f"WITH state AS (UPDATE {quote(state.db_table)} SET {heartbeats} = {heartbeats} + 1, {assignments} "
        f"WHERE {key} = %s RETURNING {key}) "
        f"INSERT INTO {quote(samples.db_table)} ({sample_columns}) "
        f"SELECT {key}, %s, {', '.join(['%s'] * len(SAMPLE_FIELDS))} FROM state"
    )


SAMPLE_METRICS = (
    "in_flight", "running", "waiting", "kv_cache_usage", "ttft_p95_s", "gpu_utilization_pct",
    "gpu_memory_used_mb", "gpu_temperature_c", "gpu_power_w", "cpu_pct", "memory_used_mb",
)


def downsample_heartbeats(*, now: datetime | None = None) -> dict[str, int]:
    """Fold raw samples older than RAW_RETENTION into one-minute averages; drop minutes older than
    MINUTE_RETENTION. Safe to run twice: each raw minute is folded and deleted in one transaction."""
    now = now or timezone.now()
    raw_cutoff = (now - RAW_RETENTION).replace(second=0, microsecond=0)
    with transaction.atomic():
        old_raw = HeartbeatSample.objects.filter(resolution_s=HeartbeatSample.RAW, at__lt=raw_cutoff)
        groups = (
            old_raw.annotate(minute=TruncMinute("at"))
            .values("instance_id", "minute")
            .annotate(
                **{f"avg_{name}": Avg(name) for name in SAMPLE_METRICS if name != "gpu_temperature_c"},
                max_gpu_temperature_c=Max("gpu_temperature_c"),
            )
        )
        folded = [
            HeartbeatSample(
                instance_id=group["instance_id"],
                at=group["minute"],
                resolution_s=MINUTE,
                gpu_temperature_c=group["max_gpu_temperature_c"],
                **{name: group[f"avg_{name}"] for name in SAMPLE_METRICS if name != "gpu_temperature_c"},
            )
            for group in groups
        ]
        HeartbeatSample.objects.bulk_create(folded, batch_size=1000)
        deleted_raw, _ = old_raw.delete()
    deleted_minutes, _ = HeartbeatSample.objects.filter(resolution_s=MINUTE, at__lt=now - MINUTE_RETENTION).delete()
    return {"folded": len(folded), "deleted_raw": deleted_raw, "deleted_minutes": deleted_minutes}


def heartbeat_age_s(state: WorkerState | None, *, now: datetime | None = None) -> float | None:
    if state is None or state.last_heartbeat_at is None:
        return None
    return ((now or timezone.now()) - state.last_heartbeat_at).total_seconds()
