"""Builders for the worker-protocol tests: an instance with a known worker token, and agent payloads."""

from __future__ import annotations

import json

from django.test import Client

from instances.credentials import mint_credentials
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import make_instance, run_on_commit

MODEL = "mock-echo"  # the seeded Mock model: its code is the name the engine serves


def worker_instance(*, status: str = Status.INSTALLING, **fields) -> tuple[Instance, str]:
    """A Mock instance in `status` with minted credentials; returns it and its worker token in clear."""
    instance = make_instance(status=status, **fields)
    credentials = mint_credentials()
    Instance.objects.filter(pk=instance.pk).update(**credentials.stored_fields())
    instance.refresh_from_db()
    return instance, credentials.worker_token


def register_payload(instance: Instance, **overrides) -> dict:
    payload = {
        "instance_id": str(instance.pk), "agent_version": "0.1.0", "engine_version": "0.33.0+inventiv.sim",
        "model": MODEL, "agent_port": 18081, "engine_port": 18000,
        "gpus": [{"index": 0, "name": "NVIDIA L4", "memory_total_mb": 23034}],
        "host": {"hostname": "inv-test", "cpu_count": 8, "memory_total_mb": 48128},
    }
    return {**payload, **overrides}


def heartbeat_payload(instance: Instance, status: str = "ready", **overrides) -> dict:
    payload = {
        "instance_id": str(instance.pk), "status": status, "reason": None, "model": MODEL,
        "sent_at": "2026-11-26T21:42:10.345678+00:00", "in_flight": 3,
        "engine": {"running": 2, "waiting": 1, "kv_cache_usage": 0.41, "ttft_p50_s": 0.2, "ttft_p95_s": 0.45,
                   "itl_p50_s": 0.024, "itl_p95_s": 0.061, "prompt_tokens_total": 3145728,
                   "generation_tokens_total": 786432, "requests_total": 397, "preemptions_total": 4},
        "gpus": [{"index": 0, "name": "NVIDIA L4", "utilization_pct": 40, "memory_used_mb": 615,
                  "memory_total_mb": 23034, "temperature_c": 38, "power_w": 80.4, "power_limit_w": 72.0}],
        "host": {"cpu_pct": 3.5, "memory_used_mb": 9120, "memory_total_mb": 48128, "disk_used_gb": 61.2,
                 "disk_total_gb": 200.0, "net_rx_bytes": 123456789, "net_tx_bytes": 98765432},
    }
    return {**payload, **overrides}


def post(path: str, payload, *, token: str | None, **headers):
    """POST `payload` (a dict, or raw text) to /api/worker/<path> as the agent does; what the request enqueued
    on commit has run when this returns."""
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    with run_on_commit():
        return Client().post(f"/api/worker/{path}", data=body, content_type="application/json", **headers)


def register(instance: Instance, token: str, **overrides):
    return post("register", register_payload(instance, **overrides), token=token)


def heartbeat(instance: Instance, token: str, status: str = "ready", **overrides):
    return post("heartbeat", heartbeat_payload(instance, status, **overrides), token=token)
