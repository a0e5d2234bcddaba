"""Builders for autoscaler tests: pools on the seeded Mock cloud."""

from __future__ import annotations

from autoscaling.models import Pool, PoolChoice
from catalog.models import InstanceType, LlmModel, Zone

# Small windows so a test can walk a pool through a whole scale cycle on a fake clock.
FAST = dict(scale_up_window_s=2, scale_down_window_s=4, idle_period_s=5, drain_timeout_s=30, hold_timeout_s=30)


def make_pool(*, name: str = "echo", choices=(("MOCK-GPU-S", "mock-eu-1"),), **fields) -> Pool:
    values = dict(model=LlmModel.objects.get(code="mock-echo"), min_size=0, max_size=3, target_in_flight=4,
                  scale_to_zero=True, **FAST)
    values.update(fields)
    pool = Pool.objects.create(name=name, **values)
    for position, (type_code, zone_code) in enumerate(choices, start=1):
        PoolChoice.objects.create(pool=pool, position=position, instance_type=InstanceType.objects.get(code=type_code),
                                  zone=Zone.objects.get(code=zone_code))
    return pool
