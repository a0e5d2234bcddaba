"""Celery tasks of the finops app: thin adapters over its services."""

from celery import shared_task

from finops.services import accrue_costs, refresh_budgets


@shared_task
def accrue_costs_task() -> dict:
    """Every minute: the cost rows of every finished minute since the last run, then budget thresholds."""
    accrual = accrue_costs()
    alerts = refresh_budgets()
    return {"start": accrual.start.isoformat(), "end": accrual.end.isoformat(), "rows": accrual.rows,
            "budget_alerts": len(alerts)}
