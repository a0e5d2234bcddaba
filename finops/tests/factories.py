"""Builders for finops tests: billed instances, request traces, budgets, and a clock set to a known moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from catalog.models import InstanceType, LlmModel
from finops.models import Budget
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import FakeClock, make_instance
from router.models import ApiKey, RequestTrace

# Not minute-aligned on purpose: the first and last minutes of a machine are prorated.
START = datetime(2026, 5, 14, 10, 0, 17, tzinfo=UTC)
SMALL = "MOCK-GPU-S"  # 0.25 EUR/h in the seed
LARGE = "MOCK-4GPU-M"  # 0.75 EUR/h


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The process clock, stopped at START; tests move it with clock.advance(seconds)."""
    from django.utils import timezone

    fake = FakeClock(START)
    monkeypatch.setattr(timezone, "now", fake)
    return fake


def billed_instance(*, since: datetime, until: datetime | None = None, type_code: str = SMALL,
                    model: str = "mock-echo", pool_id=None, status: str | None = None) -> Instance:
    """An instance whose server existed from `since` to `until` (None: still running), at its type's price."""
    instance_type = InstanceType.objects.get(code=type_code)
    requested = {"pool_id": str(pool_id)} if pool_id is not None else {}
    instance = make_instance(
        status=status or (Status.TERMINATED if until else Status.READY), with_server=False,
        cost_per_hour=instance_type.cost_per_hour, provider_created_at=since, terminated_at=until,
    )
    instance.instance_type, instance.model = instance_type, LlmModel.objects.get(code=model)
    instance.requested = {**instance.requested, **requested}
    instance.save(update_fields=["instance_type", "model", "requested"])
    return instance


def api_key(name: str = "client") -> ApiKey:
    return ApiKey.objects.create(name=name, prefix="sk-inv-test", key_hash=f"hash-{name}")


def trace(*, model: str = "mock-echo", at: datetime, prompt: int = 0, completion: int = 0, key: ApiKey | None = None,
          ttft_ms: float | None = None, latency_ms: float = 100.0, outcome: str = RequestTrace.Outcome.OK,
          instance: Instance | None = None) -> RequestTrace:
    return RequestTrace.objects.create(
        api_key=key, endpoint="chat.completions", model=model, instance_id=instance.pk if instance else None,
        status_code=200 if outcome == RequestTrace.Outcome.OK else 502, outcome=outcome, stream=ttft_ms is not None,
        prompt_tokens=prompt, completion_tokens=completion, ttft_ms=ttft_ms, latency_ms=latency_ms, created_at=at,
    )


def budget(*, amount: str, pool_id: str | None = None, key: ApiKey | None = None) -> Budget:
    return Budget.objects.create(amount=Decimal(amount), pool_id=pool_id, api_key=key)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
