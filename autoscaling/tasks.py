"""Celery tasks of the autoscaler: thin adapters over autoscaling.services (which never enqueues them:
autoscaling.holds does)."""

from celery import shared_task

from autoscaling import services


@shared_task
def autoscale_pools_task() -> int:
    """The beat tick (every 10 s): decide for every enabled pool."""
    return services.autoscale_pools()


@shared_task
def autoscale_pool_task(pool_id: int) -> bool:
    """Decide for one pool now (the router holds requests for it). Harmless if a tick has it already."""
    return services.autoscale_pool(pool_id) is not None
