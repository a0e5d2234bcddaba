"""Enqueueing after commit that never fails the work it follows.

Every task is enqueued once its transaction commits (`task.delay_on_commit(id)`). By then the work is in
the database: a request stored, a transition written. When the broker cannot take the task (Redis down,
restarting, unreachable), the task is not sent, one log line says so, and the caller goes on: the beat
sweeps find every such row and finish it once the queue is back (README, "The instance lifecycle"). An
API view that wants to tell its client which of the two happened watches its service call:

    with watch_enqueues() as enqueues:
        instance = terminate_instance(...)
    enqueues.all_sent  # False: the sweeps finish it

`OnCommitTask` is every task's base class (inventiv/celery.py names it).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from celery.contrib.django.task import DjangoTask
from django.db import transaction
from kombu.exceptions import KombuError

log = logging.getLogger(__name__)

# What a broker that cannot take a message raises: kombu wraps the transport's connection errors in its
# own OperationalError; a socket error that slips through is an OSError.
BROKER_ERRORS = (KombuError, OSError)


@dataclass
class EnqueueReport:
    """The tasks that could not be sent while it was watched, by name."""

    unsent: list[str] = field(default_factory=list)

    @property
    def all_sent(self) -> bool:
        return not self.unsent


_watching: ContextVar[EnqueueReport | None] = ContextVar("inventiv_enqueues", default=None)


@contextmanager
def watch_enqueues() -> Iterator[EnqueueReport]:
    """Report the enqueues that failed inside the block (those after its commits included)."""
    report = EnqueueReport()
    token = _watching.set(report)
    try:
        yield report
    finally:
        _watching.reset(token)


def send_or_leave_to_sweeps(task, args: tuple, kwargs: dict, options: dict) -> bool:
    """Send `task` now; when the broker cannot take it, log one line and return False (never raise)."""
    try:
        task.apply_async(args, kwargs, **options)
        return True
    except BROKER_ERRORS as exc:
        log.warning("task %s%s not enqueued (the beat sweeps finish its work): %s: %s",
                    task.name, list(args), type(exc).__name__, exc)
    except Exception:  # noqa: BLE001 - a bug, but the committed work still stands and the sweeps finish it
        log.exception("task %s%s not enqueued (the beat sweeps finish its work)", task.name, list(args))
    report = _watching.get()
    if report is not None:
        report.unsent.append(task.name)
    return False


class OnCommitTask(DjangoTask):
    """A task whose `*_on_commit` enqueue, run after the commit, logs a broker failure instead of raising it
    (Django would raise it from the commit, past work that is already saved, to a client as a 500)."""

    def delay_on_commit(self, *args, **kwargs) -> None:
        transaction.on_commit(functools.partial(send_or_leave_to_sweeps, self, args, kwargs, {}))

    def apply_async_on_commit(self, args=None, kwargs=None, **options) -> None:
        transaction.on_commit(functools.partial(send_or_leave_to_sweeps, self, tuple(args or ()), kwargs or {},
                                                options))
