"""Monthly budgets per pool and per API key: thresholds logged once per month, keys over budget refused."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from finops.models import Budget, BudgetAlert
from finops.selectors import budget_alerts, keys_over_budget
from finops.services import accrue_costs, refresh_budgets
from finops.tests.factories import LARGE, START, api_key, billed_instance, budget, minutes, trace
from monitoring.models import ActionLog

pytestmark = pytest.mark.django_db


def run_the_cost_task_every_minute(clock, *, for_minutes: int) -> list:
    alerts = []
    for _ in range(for_minutes):
        clock.advance(60)
        accrue_costs()
        alerts += refresh_budgets()
    return alerts


def threshold_logs() -> list[dict]:
    return [row.metadata for row in ActionLog.objects.filter(action_type="BUDGET_THRESHOLD").order_by("id")]


def test_a_pool_crossing_80_and_100_percent_writes_one_action_each(seed, clock):
    pool_budget = budget(amount="1.00", pool_id="7")
    billed_instance(since=START, type_code=LARGE, pool_id=7)  # 0.75 EUR/h: 0.80 at 64 min, 1.00 at 80 min
    billed_instance(since=START, type_code=LARGE)  # outside the pool

    run_the_cost_task_every_minute(clock, for_minutes=63)
    assert threshold_logs() == []
    run_the_cost_task_every_minute(clock, for_minutes=2)
    assert [log["threshold_percent"] for log in threshold_logs()] == [80]
    run_the_cost_task_every_minute(clock, for_minutes=30)

    logs = threshold_logs()
    assert [log["threshold_percent"] for log in logs] == [80, 100]
    assert {(log["scope"], log["pool_id"], log["budget_id"], log["amount"]) for log in logs} == {
        ("pool", "7", pool_budget.pk, "1.00")
    }
    assert ActionLog.objects.get(metadata__threshold_percent=100).component == "orchestrator"
    assert BudgetAlert.objects.filter(budget=pool_budget).count() == 2


def test_thresholds_are_logged_again_only_in_a_new_month(seed, clock):
    budget(amount="0.10", pool_id="p")
    billed_instance(since=START, pool_id="p")
    run_the_cost_task_every_minute(clock, for_minutes=30)
    assert len(threshold_logs()) == 2

    refresh_budgets()
    clock.current = datetime(2026, 6, 1, 1, 0, 30, tzinfo=UTC)
    while accrue_costs().end < datetime(2026, 6, 1, 1, 0, tzinfo=UTC):  # back-fill, a day per run
        pass
    refresh_budgets()

    assert [(log["threshold_percent"], log["month"]) for log in threshold_logs()] == [
        (80, "2026-05-01"), (100, "2026-05-01"), (80, "2026-06-01"), (100, "2026-06-01")
    ]


def test_a_key_at_its_budget_is_listed_as_over_budget_until_the_budget_is_raised(seed, clock):
    alice, bob = api_key("alice"), api_key("bob")
    alice_budget = budget(amount="0.10", key=alice)
    budget(amount="50.00", key=bob)
    billed_instance(since=START)  # 0.25 EUR/h
    trace(key=alice, at=START + minutes(1), prompt=900, completion=100)  # alice: 90 % of the tokens
    trace(key=bob, at=START + minutes(2), prompt=100)

    run_the_cost_task_every_minute(clock, for_minutes=25)
    # alice's share: 90 % of 0.25 EUR/h x 24 min 43 s = 0.0927: past 80 %, not yet 100 %.
    assert keys_over_budget() == set()
    assert [(a.budget_id, a.threshold) for a in BudgetAlert.objects.order_by("id")] == [(alice_budget.pk, 80)]

    run_the_cost_task_every_minute(clock, for_minutes=3)
    assert keys_over_budget() == {alice.pk}
    assert [log["api_key_id"] for log in threshold_logs()] == [alice.pk, alice.pk]

    alice_budget.amount = Decimal("5.00")
    alice_budget.save(update_fields=["amount"])
    assert keys_over_budget() == set()


def test_a_key_over_budget_last_month_starts_the_new_month_under_it(seed, clock):
    alice = api_key("alice")
    budget(amount="0.01", key=alice)
    billed_instance(since=START)
    trace(key=alice, at=START + minutes(1), prompt=10)
    run_the_cost_task_every_minute(clock, for_minutes=10)
    assert keys_over_budget() == {alice.pk}

    assert keys_over_budget(now=datetime(2026, 6, 1, tzinfo=UTC)) == set()


def test_the_dashboard_lists_budgets_from_80_percent_fullest_first(seed, clock):
    budget(amount="0.10", pool_id="full")
    budget(amount="0.12", pool_id="most")
    budget(amount="10.00", pool_id="calm")
    for pool in ("full", "most", "calm"):
        billed_instance(since=START, pool_id=pool)
    run_the_cost_task_every_minute(clock, for_minutes=25)  # 0.25 EUR/h x 1,483 s = 0.102986 EUR each

    alerts = budget_alerts()

    assert [(b.pool_id, b.percent) for b in alerts] == [("full", Decimal("103.0")), ("most", Decimal("85.8"))]


def test_a_budget_states_its_spend_as_a_percentage_of_its_amount_to_a_tenth():
    assert Budget(amount=Decimal("0.12"), spent=Decimal("0.102986")).percent == Decimal("85.8")
    assert Budget(amount=Decimal("10"), spent=Decimal("0")).percent == Decimal("0.0")
    assert Budget(amount=Decimal("0"), spent=Decimal("1")).percent == Decimal(0)  # no amount: nothing to fill
