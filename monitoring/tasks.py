"""Celery tasks of the monitoring app: thin adapters over its services."""

from celery import shared_task

from monitoring.heartbeats import downsample_heartbeats


@shared_task
def downsample_heartbeats_task() -> dict[str, int]:
    return downsample_heartbeats()
