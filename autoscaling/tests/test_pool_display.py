"""How the Pools pages show a pool: its size and load as the selector reads them, whether it is still
settling, and its chart data."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from autoscaling.models import Pool, PoolSample
from autoscaling.selectors import pool_by_name
from autoscaling.templatetags.pool_display import converging, pool_chart
from autoscaling.tests.factories import make_pool
from instances.status import Status
from instances.tests.factories import make_instance, mock_cloud  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_a_pool_row_counts_its_size_and_has_no_load_before_its_first_sample(mock_cloud):
    pool = make_pool(min_size=0, max_size=3)
    for status in (Status.READY, Status.BOOTING, Status.DRAINING, Status.TERMINATED):
        make_instance(status=status, with_server=False, pool=pool)

    row = pool_by_name("echo")

    assert (row.ready_count, row.starting_count, row.draining_count, row.size) == (1, 1, 1, 2)
    assert row.load is None


def test_a_pool_rows_load_is_the_latest_samples_in_flight_waiting_and_held(mock_cloud):
    pool = make_pool()
    now = timezone.now()
    PoolSample.objects.create(pool=pool, at=now - timedelta(seconds=20), in_flight=9, waiting=9, held=9)
    PoolSample.objects.create(pool=pool, at=now, in_flight=3, waiting=2, held=1, kv_cache_usage=0.25)

    row = pool_by_name("echo")

    assert row.load == 6 and row.latest_kv_cache_usage == 0.25


def test_a_pool_converges_while_members_arrive_or_leave_or_its_size_is_off(mock_cloud):
    pool = make_pool()
    assert not converging(pool_by_name("echo"))  # empty, and desired 0

    Pool.objects.filter(pk=pool.pk).update(desired_size=1)
    assert converging(pool_by_name("echo"))  # short of the desired size

    Pool.objects.filter(pk=pool.pk).update(enabled=False)
    assert not converging(pool_by_name("echo"))  # disabled: left at its size

    make_instance(status=Status.DRAINING, with_server=False, pool=pool)
    assert converging(pool_by_name("echo"))  # a member still leaving


def test_the_pool_chart_has_size_desired_draining_and_load_per_sample():
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    samples = [PoolSample(at=start, ready=1, starting=1, draining=1, desired=3, in_flight=4, waiting=1, held=2),
               PoolSample(at=start + timedelta(seconds=15), ready=2, desired=2)]

    assert pool_chart(samples) == {
        "times": ["2025-01-01T12:00:00+00:00", "2025-01-01T12:00:15+00:00"],
        "size": [2, 2], "desired": [3, 2], "draining": [1, 0], "load": [7, 0],
    }
