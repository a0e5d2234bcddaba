"""Writing costs: the per-minute cost series (back-filled, idempotent) and budget thresholds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Min, Q
from django.utils import timezone

from finops import calc
from finops.models import Budget, BudgetAlert, CostCursor, CostMinute
from finops.selectors import key_spend, pool_spend
from instances.models import Instance
from monitoring.services import Component, record_action

log = logging.getLogger(__name__)

CURSOR_NAME = "cost"
# Each run also revisits this many minutes before the cursor. A provider can report a server's creation
# time after the minute it falls in was computed (the create call was in flight across the boundary):
# those minutes get the late instance's rows, and rows already written are kept as they are.
REVISIT_MINUTES = 5
# A run computes at most this many minutes (a day); a longer back-fill (first run on old history, a long
# outage) goes on at the next run, so no single transaction grows without bound.
MAX_MINUTES_PER_RUN = 24 * 60
INSERT_BATCH = 2000
# Budget thresholds, in percent of the monthly amount: each writes one BUDGET_THRESHOLD per month.
BUDGET_THRESHOLDS = (80, 100)
BUDGET_ACTION = "BUDGET_THRESHOLD"


@dataclass(frozen=True)
class Accrual:
    """What one run covered: minutes from `start` to `end` (plus the revisited ones before), and how many
    cost rows it wrote or found already there."""

    start: datetime
    end: datetime
    rows: int


def _first_billable_minute(default: datetime) -> datetime:
    first = Instance.objects.filter(cost_per_hour__isnull=False).aggregate(at=Min("provider_created_at"))["at"]
    return calc.floor_minute(first) if first is not None and first < default else default


def _billable_instances(*, start: datetime, end: datetime) -> list[dict]:
    """Instances paid for at some moment of [start, end), with what a cost row copies from them."""
    return list(
        Instance.objects.filter(provider_created_at__lt=end, cost_per_hour__isnull=False)
        .filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=start))
        .values("id", "provider__code", "model__code", "requested", "cost_per_hour", "provider_created_at",
                "terminated_at")
    )


def cost_rows(*, start: datetime, end: datetime) -> list[CostMinute]:
    """The cost rows of every instance for the minutes of [start, end) (both minute-aligned)."""
    rows = []
    for instance in _billable_instances(start=start, end=end):
        pool_id = (instance["requested"] or {}).get("pool_id")
        for minute, amount in calc.minute_costs(
            billed_from=instance["provider_created_at"], billed_until=instance["terminated_at"],
            cost_per_hour=instance["cost_per_hour"], window_start=start, window_end=end,
        ):
            rows.append(CostMinute(
                minute=minute, instance_id=instance["id"], provider=instance["provider__code"] or "",
                model=instance["model__code"] or "", pool_id=str(pool_id) if pool_id is not None else None,
                amount=amount,
            ))
    return rows


def accrue_costs(*, now: datetime | None = None) -> Accrual:
    """Write the cost rows of every finished minute since the cursor, and move the cursor past them.

    Safe to run twice or side by side: the cursor row is locked for the run, rows are unique per
    (minute, instance) and inserted ignoring conflicts, and the cursor moves in the same transaction.
    A run after an outage back-fills every minute it missed (up to MAX_MINUTES_PER_RUN at a time).
    """
    end = calc.floor_minute(now or timezone.now())
    with transaction.atomic():
        cursor, created = CostCursor.objects.select_for_update().get_or_create(
            name=CURSOR_NAME, defaults={"computed_until": end}
        )
        if created:
            # First run: account for every machine Inventiv ever paid for.
            cursor.computed_until = _first_billable_minute(end)
        start = min(cursor.computed_until, end)
        stop = min(end, start + timedelta(minutes=MAX_MINUTES_PER_RUN))
        revisit_from = start - timedelta(minutes=REVISIT_MINUTES)
        rows = cost_rows(start=revisit_from, end=stop) if stop > revisit_from else []
        CostMinute.objects.bulk_create(rows, batch_size=INSERT_BATCH, ignore_conflicts=True)
        cursor.computed_until = max(cursor.computed_until, stop)
        cursor.save(update_fields=["computed_until", "updated_at"])
    if stop < end:
        log.info("cost back-fill reached %s; %s to go", stop.isoformat(), end - stop)
    return Accrual(start=start, end=stop, rows=len(rows))


def refresh_budgets(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Refresh every budget's spend this month; log each threshold crossed for the first time this month.

    Returns the alerts written by this call (an alert already written this month is not repeated).
    """
    now = now or timezone.now()
    month_start = calc.month_start(now)
    budgets = list(Budget.objects.all())
    if not budgets:
        return []
    pools = pool_spend(pool_ids=[b.pool_id for b in budgets if b.pool_id is not None], start=month_start, end=now)
    keys = key_spend(api_key_ids=[b.api_key_id for b in budgets if b.api_key_id is not None],
                     start=month_start, end=now)
    alerts = []
    for budget in budgets:
        spent = pools.get(budget.pool_id) if budget.pool_id is not None else keys.get(budget.api_key_id)
        budget.spent = (spent or Decimal(0)).quantize(calc.AMOUNT_QUANTUM)
        budget.spent_month, budget.spent_at = month_start.date(), now
        alerts += _cross_thresholds(budget, now=now)
    Budget.objects.bulk_update(budgets, ["spent", "spent_month", "spent_at"])
    return alerts


def _cross_thresholds(budget: Budget, *, now: datetime) -> list[BudgetAlert]:
    written = []
    for threshold in BUDGET_THRESHOLDS:
        if budget.spent * 100 < budget.amount * threshold:
            break
        try:
            with transaction.atomic():
                alert, created = BudgetAlert.objects.get_or_create(
                    budget=budget, month=budget.spent_month, threshold=threshold,
                    defaults={"spent": budget.spent, "created_at": now},
                )
                if created:
                    _log_threshold(budget, threshold=threshold)
        except IntegrityError:
            # Another run wrote this month's alert between our read and our insert: it logged it.
            continue
        if created:
            written.append(alert)
    return written


def _log_threshold(budget: Budget, *, threshold: int) -> None:
    record_action(
        BUDGET_ACTION, component=Component.ORCHESTRATOR,
        metadata={
            "budget_id": budget.pk, "scope": budget.scope, "pool_id": budget.pool_id,
            "api_key_id": budget.api_key_id, "threshold_percent": threshold,
            "spent": str(calc.money(budget.spent)), "amount": str(budget.amount),
            "month": budget.spent_month.isoformat(),
        },
    )
