"""The per-minute cost series: proration, every aggregate level, back-fill after an outage, idempotence."""

from datetime import timedelta
from decimal import Decimal

import pytest

from autoscaling.tests.factories import make_pool
from finops import selectors
from finops.models import CostCursor, CostMinute
from finops.services import MAX_MINUTES_PER_RUN, REVISIT_MINUTES, accrue_costs
from finops.tasks import accrue_costs_task
from finops.tests.factories import START, billed_instance, budget, minutes
from instances.models import Instance
from instances.status import Status
from instances.termination import terminate_instance
from instances.tests.factories import fresh, request_mock

pytestmark = pytest.mark.django_db
QUARTER = Decimal("0.25")


def accrue_every_minute(clock, *, for_minutes: int) -> None:
    """Run the beat task once a minute, as Celery beat would."""
    for _ in range(for_minutes):
        clock.advance(60)
        accrue_costs()


def every_level(*, start, end) -> dict:
    return {
        "total": selectors.spend(start=start, end=end),
        "provider": selectors.spend_by("provider", start=start, end=end),
        "model": selectors.spend_by("model", start=start, end=end),
        "pool": selectors.spend_by("pool", start=start, end=end),
        "instance": selectors.spend_by("instance", start=start, end=end),
    }


def test_a_small_mock_gpu_allocated_for_exactly_60_minutes_costs_a_quarter_at_every_level(
        mock_cloud, clock, django_capture_on_commit_callbacks):
    accrue_costs()  # the cursor starts before the machine exists
    pool = make_pool(name="chat")
    with django_capture_on_commit_callbacks(execute=True):
        instance = request_mock(pool_id=pool.pk)
    assert fresh(instance).provider_created_at == START
    assert fresh(instance).cost_per_hour == QUARTER

    accrue_every_minute(clock, for_minutes=60)
    with django_capture_on_commit_callbacks(execute=True):
        terminate_instance(fresh(instance), reason="done")
    assert (fresh(instance).status, fresh(instance).terminated_at) == (Status.TERMINATED, START + minutes(60))
    accrue_every_minute(clock, for_minutes=5)

    levels = every_level(start=START - minutes(60), end=clock())
    assert levels == {
        "total": QUARTER,
        "provider": [{"key": "mock", "amount": QUARTER}],
        "model": [{"key": "mock-echo", "amount": QUARTER}],
        "pool": [{"key": str(pool.pk), "amount": QUARTER}],
        "instance": [{"key": str(instance.pk), "amount": QUARTER}],
    }


def test_the_first_and_last_minutes_are_prorated_by_seconds(seed, clock):
    instance = billed_instance(since=START, until=START + minutes(60))
    clock.advance(2 * 3600)

    accrue_costs()

    rows = list(CostMinute.objects.filter(instance_id=instance.pk).order_by("minute"))
    assert len(rows) == 61  # 43 s, 59 whole minutes, 17 s
    assert rows[0].minute == START.replace(second=0) and rows[0].amount == Decimal("0.002986111111")  # 0.25 x 43/3600
    assert {row.amount for row in rows[1:-1]} == {Decimal("0.004166666667")}  # 0.25/60
    assert rows[-1].amount == Decimal("0.001180555556")  # 0.25 x 17/3600
    assert selectors.spend(start=START - minutes(1), end=clock()) == QUARTER


def test_a_ten_minute_outage_of_the_task_is_back_filled_exactly(seed, clock):
    billed_instance(since=START)  # still running
    accrue_costs()
    accrue_every_minute(clock, for_minutes=20)

    clock.advance(10 * 60)  # ten beats never ran
    accrue_costs()

    # Computed to 10:20 when the outage began; now to 10:30, as if the task had never stopped: from 10:00:17
    # to 10:30:00 is 1,783 s at 0.25 EUR/h, one row per minute from 10:00 to 10:29.
    assert CostCursor.objects.get().computed_until == (START + minutes(30)).replace(second=0)
    assert selectors.spend(start=START, end=clock()) == Decimal("0.123819")  # 0.25 x 1783/3600
    assert CostMinute.objects.count() == 30


def test_running_the_task_twice_or_after_a_reset_cursor_does_not_double_count(seed, clock):
    billed_instance(since=START, until=START + minutes(30))
    clock.advance(45 * 60)
    accrue_costs()
    total = selectors.spend(start=START, end=clock())

    accrue_costs()
    CostCursor.objects.update(computed_until=START - minutes(5))  # as if a restart lost the cursor's progress
    accrue_costs()

    assert total == Decimal("0.125000")
    assert selectors.spend(start=START, end=clock()) == total
    assert CostMinute.objects.count() == 31


def test_a_server_recorded_late_is_still_charged_for_the_minutes_already_computed(seed, clock):
    assert REVISIT_MINUTES >= 3  # what this test relies on
    accrue_costs()
    clock.advance(3 * 60)
    accrue_costs()
    # The provider's create call was in flight across the minute boundaries: its creation time is in the past.
    billed_instance(since=START + minutes(1))

    clock.advance(60)
    accrue_costs()

    # From 10:01:17 to the last finished minute (10:04:00): 163 s.
    assert selectors.spend(start=START, end=clock()) == Decimal("0.011319")  # 0.25 x 163/3600


def test_the_minute_still_running_is_not_charged_yet(seed, clock):
    billed_instance(since=START)
    clock.advance(30)  # 10:00:47

    accrue_costs()

    assert CostMinute.objects.count() == 0
    assert CostCursor.objects.get().computed_until == START.replace(second=0)


def test_a_long_back_fill_goes_on_at_the_next_run_a_day_at_a_time(seed, clock):
    billed_instance(since=START)
    clock.advance(timedelta(days=2, minutes=30).total_seconds())

    first = accrue_costs()
    second = accrue_costs()
    third = accrue_costs()

    assert first.end - first.start == timedelta(minutes=MAX_MINUTES_PER_RUN)
    assert (second.start, second.end - second.start) == (first.end, timedelta(minutes=MAX_MINUTES_PER_RUN))
    assert third.end == (START + timedelta(days=2, minutes=30)).replace(second=0)
    # 2 days 29 min 43 s = 174,583 s at 0.25 EUR/h.
    assert selectors.spend(start=START, end=clock()) == Decimal("12.123819")


def test_instances_without_a_server_or_a_price_cost_nothing(seed, clock):
    no_server, no_price = billed_instance(since=START), billed_instance(since=START)
    Instance.objects.filter(pk=no_server.pk).update(provider_created_at=None)
    Instance.objects.filter(pk=no_price.pk).update(cost_per_hour=None)
    clock.advance(600)

    accrue_costs()

    assert CostMinute.objects.count() == 0


def test_beat_runs_the_cost_task_every_minute_and_drops_a_run_still_queued_at_the_next(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["finops-accrue-costs"]

    assert entry["task"] == accrue_costs_task.name
    assert entry["schedule"] == 60 and entry["options"]["expires"] < 60


def test_the_task_accrues_the_finished_minutes_then_checks_budgets(seed, clock):
    billed_instance(since=START, pool_id="p")
    budget(amount="0.01", pool_id="p")
    clock.advance(5 * 60)

    result = accrue_costs_task.delay().get()

    assert result == {"start": "2026-05-14T10:00:00+00:00", "end": "2026-05-14T10:05:00+00:00", "rows": 5,
                      "budget_alerts": 2}
