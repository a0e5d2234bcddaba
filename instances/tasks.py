"""Celery tasks: thin adapters that take an instance id and call one service.

Every task is safe to run twice (the services claim the instance and check its status first) and exits
cleanly when the instance is gone. Only transient provider errors are retried, with exponential
backoff and jitter; when the retries run out the sweeps finish the job.
"""

import random

from celery import shared_task

from instances import draining, services, sweeps, workers
from providers.base import ProviderError

MAX_RETRIES = 5
BACKOFF_BASE_S = 2
BACKOFF_MAX_S = 60


def backoff_s(retries: int) -> float:
    """2, 4, 8 ... s capped at 60 s, each drawn in its upper half so that workers do not retry in step."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**retries)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retry_transient(task, call, instance_id: str) -> None:
    try:
        call(instance_id)
    except ProviderError as exc:
        if exc.permanent:
            raise
        raise task.retry(exc=exc, countdown=backoff_s(task.request.retries)) from None


@shared_task(bind=True, max_retries=MAX_RETRIES)
def provision_instance_task(self, instance_id: str) -> None:
    _retry_transient(self, services.provision_instance, instance_id)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def terminate_instance_task(self, instance_id: str) -> None:
    _retry_transient(self, services.execute_termination, instance_id)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def check_health_task(self, instance_id: str) -> None:
    _retry_transient(self, services.check_instance_health, instance_id)


@shared_task
def sweep_startup_health_task() -> int:
    return sweeps.sweep_startup_health()


@shared_task
def sweep_watchdog_task() -> int:
    return sweeps.sweep_watchdog()


@shared_task
def sweep_terminating_task() -> int:
    return sweeps.sweep_terminating()


@shared_task
def sweep_lost_provisions_task() -> int:
    return sweeps.sweep_lost_provisions()


@shared_task
def sweep_orphans_task() -> int:
    return sweeps.sweep_orphans()


@shared_task
def sweep_lost_heartbeats_task() -> int:
    return workers.sweep_lost_heartbeats()


@shared_task
def finish_drain_task(instance_id: str) -> bool:
    return draining.finish_drain(instance_id)


@shared_task
def sweep_drains_task() -> int:
    return draining.sweep_drains()
