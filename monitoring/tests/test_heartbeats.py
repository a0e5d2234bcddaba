import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.heartbeats import (
    PayloadInvalid,
    downsample_heartbeats,
    record_heartbeat,
    validate_heartbeat,
    validate_registration,
)
from monitoring.models import HeartbeatSample, WorkerState


def heartbeat_payload(**overrides):
    payload = {
        "instance_id": str(uuid.uuid4()),
        "status": "ready",
        "reason": None,
        "model": "mock-echo",
        "sent_at": "2026-11-26T12:00:00Z",
        "in_flight": 3,
        "engine": {"running": 2, "waiting": 1, "kv_cache_usage": 0.25, "ttft_p95_s": 0.12, "prompt_tokens_total": 100,
                   "prefix_cache_hits_total": 60, "prefix_cache_hit_rate": 0.6},
        "gpus": [{"index": 0, "name": "H100", "utilization_pct": 55.0, "memory_used_mb": 1000, "memory_total_mb": 81559,
                  "temperature_c": 61, "power_w": 300.5, "power_limit_w": 700}],
        "host": {"cpu_pct": 12.5, "memory_used_mb": 2048, "memory_total_mb": 65536},
    }
    payload.update(overrides)
    return payload


def test_it_accepts_a_complete_heartbeat():
    heartbeat = validate_heartbeat(heartbeat_payload())
    assert heartbeat.status == "ready"
    assert heartbeat.engine["kv_cache_usage"] == 0.25
    assert heartbeat.engine["prefix_cache_hit_rate"] == 0.6 and heartbeat.engine["prefix_cache_hits_total"] == 60
    assert heartbeat.gpus[0]["power_w"] == 300.5


def test_it_accepts_missing_optional_metrics_as_null():
    heartbeat = validate_heartbeat({"instance_id": "x", "status": "starting", "gpus": [{"index": 0, "utilization_pct": None}]})
    assert heartbeat.engine["running"] is None
    assert heartbeat.gpus[0]["utilization_pct"] is None


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"status": "dancing"}, "status"),
        ({"status": None}, "status"),
        ({"in_flight": -1}, "in_flight"),
        ({"in_flight": "many"}, "in_flight"),
        ({"engine": {"kv_cache_usage": 7}}, "engine.kv_cache_usage"),
        ({"engine": {"prefix_cache_hit_rate": 1.5}}, "engine.prefix_cache_hit_rate"),
        ({"host": {"memory_used_mb": -5}}, "host.memory_used_mb"),
        ({"gpus": [{"index": 0}] * 1_000}, "gpus"),
        ({"gpus": [{"index": 0, "memory_used_mb": -1}]}, "gpus[0].memory_used_mb"),
        ({"gpus": [{"index": 0, "temperature_c": float("nan")}]}, "gpus[0].temperature_c"),
        ({"sent_at": "yesterday"}, "sent_at"),
        ({"engine": "fast"}, "engine"),
    ],
)
def test_it_refuses_absurd_or_malformed_values_naming_the_field(overrides, field):
    with pytest.raises(PayloadInvalid) as error:
        validate_heartbeat(heartbeat_payload(**overrides))
    assert field in error.value.errors


def test_it_refuses_a_body_that_is_not_an_object():
    with pytest.raises(PayloadInvalid) as error:
        validate_heartbeat(["ready"])
    assert error.value.errors == {"body": "must be a JSON object"}


def test_it_refuses_a_registration_with_a_port_out_of_range():
    with pytest.raises(PayloadInvalid) as error:
        validate_registration({"instance_id": "x", "agent_port": 70000})
    assert "agent_port" in error.value.errors


@pytest.mark.django_db
def test_it_keeps_the_latest_state_and_appends_samples():
    instance_id = uuid.uuid4()
    record_heartbeat(instance_id, validate_heartbeat(heartbeat_payload(in_flight=1)))
    record_heartbeat(instance_id, validate_heartbeat(heartbeat_payload(in_flight=4)))
    state = WorkerState.objects.get(instance_id=instance_id)
    assert (state.in_flight, state.heartbeats, state.status) == (4, 2, "ready")
    assert HeartbeatSample.objects.filter(instance_id=instance_id).count() == 2


@pytest.mark.django_db
def test_it_folds_old_raw_samples_into_minute_averages_and_keeps_recent_ones():
    instance_id = uuid.uuid4()
    now = timezone.now().replace(second=30, microsecond=0)
    old_minute = now - timedelta(hours=3)
    for seconds, in_flight in ((0, 2), (10, 4), (20, 6)):
        record_heartbeat(instance_id, validate_heartbeat(heartbeat_payload(in_flight=in_flight)),
                         now=old_minute.replace(second=seconds))
    record_heartbeat(instance_id, validate_heartbeat(heartbeat_payload(in_flight=9)), now=now)

    result = downsample_heartbeats(now=now)
    again = downsample_heartbeats(now=now)

    assert result["folded"] == 1 and result["deleted_raw"] == 3
    assert again["folded"] == 0
    minute = HeartbeatSample.objects.get(instance_id=instance_id, resolution_s=60)
    assert minute.in_flight == 4
    assert HeartbeatSample.objects.filter(instance_id=instance_id, resolution_s=0).count() == 1
