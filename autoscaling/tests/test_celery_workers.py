"""Real Celery workers deciding for pools side by side (PostgreSQL: the workers share the test database)."""

from __future__ import annotations

from autoscaling.models import PoolSample
from autoscaling.tests.factories import make_pool
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import mock_cloud  # noqa: F401 (fixture)
from instances.tests.test_celery_worker import (  # noqa: F401 (fixtures)
    RECOVERY_S,
    _wait_for,
    broker,
    pytestmark,
    start_worker,
)

TICKS = 12
MIN_SIZE = 2


def test_two_workers_ticking_one_pool_at_once_grow_it_once(mock_cloud, start_worker):
    from autoscaling.tasks import autoscale_pool_task

    pool = make_pool(min_size=MIN_SIZE, max_size=10, scale_to_zero=False)
    workers = [start_worker("left"), start_worker("right")]

    for _ in range(TICKS):
        autoscale_pool_task.delay(pool.pk)
    _wait_for(lambda: sum(w.log().count("autoscale_pool_task") for w in workers) >= 2 * TICKS,
              timeout_s=RECOVERY_S, what="every tick to run")  # each task logs "received" and "succeeded"

    _wait_for(lambda: Instance.objects.filter(pool=pool, status=Status.READY).count() >= MIN_SIZE,
              timeout_s=RECOVERY_S, what="the requested members to be ready")

    assert 1 <= PoolSample.objects.filter(pool=pool).count() <= TICKS

    # A tick that found the pool claimed by the other worker left it alone: never more than the minimum.
    assert Instance.objects.filter(pool=pool).count() == MIN_SIZE
