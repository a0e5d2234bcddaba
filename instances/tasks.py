"""The beat sweeps' Celery tasks (the schedule is CELERY_BEAT_SCHEDULE in settings).

The task each background step runs is defined beside the service it calls, and whoever enqueues it imports
it from there (`provision_instance_task.delay_on_commit(id)`): provisioning.py, readiness.py,
termination.py, draining.py. Celery discovers only `tasks` modules, so this one imports those too, which
registers their tasks in every worker. A sweep is safe to run twice and never retried: the next tick runs
it again.
"""

from celery import shared_task

from instances import draining, lost_workers, orphans, provisioning, readiness, sweeps, termination

# The step tasks, registered by the imports above.
STEP_TASKS = (provisioning.provision_instance_task, readiness.check_health_task,
              termination.terminate_instance_task, draining.finish_drain_task)


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
    return orphans.sweep_orphans()


@shared_task
def sweep_lost_heartbeats_task() -> int:
    return lost_workers.sweep_lost_heartbeats()


@shared_task
def sweep_drains_task() -> int:
    return draining.sweep_drains()
