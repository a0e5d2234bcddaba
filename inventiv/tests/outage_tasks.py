"""A task for the broker-outage test: it leaves a file when it starts and when it ends, and can hold its
thread for a while (so that messages are still unacknowledged when the broker goes away).

Loaded only by the worker that test starts (`celery worker --include inventiv.tests.outage_tasks`).
"""

import time
from pathlib import Path

from celery import shared_task


@shared_task
def mark_task(folder: str, name: str, hold_s: float = 0.0) -> None:
    Path(folder, f"{name}.started").touch()
    time.sleep(hold_s)
    Path(folder, f"{name}.done").touch()
