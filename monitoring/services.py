"""Writing the action log. Every step of every lifecycle goes through `record_action` or `action_step`.

Every finished row is complete (README, "API conventions"): a duration (0 for an instantaneous
step), the instance's status before and after (equal when the step did not change it; a row given one side
only gets the same value on the other), and, when it failed, an error code from the documented vocabulary:
an instance's ErrorCode, or one of ActionError's codes (never an exception's class name).

A row is written when its step ends, in the caller's transaction if any. Where several steps lead to one
state change (the provider calls before a status move), their rows can be held instead (`held_actions`)
and written with that change (`transition(..., steps=held)`, or `UnitOfWork(..., steps=held)` for several
moves): one insert and one commit for the lot instead of one each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone

from monitoring.models import ActionLog

Component = ActionLog.Component
Outcome = ActionLog.Status


class ActionError:
    """Codes of failed action-log rows beside the instances' ErrorCode values (README, "API conventions")."""

    PROVIDER_ERROR = "PROVIDER_ERROR"  # the provider refused the call; retrying the same call cannot help
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"  # the provider failed in a way a later retry can fix
    INTERNAL_ERROR = "INTERNAL_ERROR"  # Inventiv's own code failed (the log has the traceback)


def failure_code(exc: BaseException) -> str:
    """The documented code of a step that raised `exc`: its own code where it carries one (ProviderError,
    StepFailed), else PROVIDER_UNAVAILABLE / PROVIDER_ERROR for a provider error (`permanent` says which),
    else INTERNAL_ERROR."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    permanent = getattr(exc, "permanent", None)
    if permanent is None:
        return ActionError.INTERNAL_ERROR
    return ActionError.PROVIDER_ERROR if permanent else ActionError.PROVIDER_UNAVAILABLE


def _statuses(before: str, after: str) -> tuple[str, str]:
    """One side given: the step did not change the status, both sides show it."""
    return before or after, after or before


def new_action(
    action_type: str,
    *,
    component: str,
    status: str = Outcome.SUCCESS,
    instance_id=None,
    user=None,
    error_code: str = "",
    error_message: str = "",
    status_before: str = "",
    status_after: str = "",
    duration_ms: int | None = None,
    metadata: dict | None = None,
    parent: ActionLog | None = None,
    request_payload=None,
    response_payload=None,
) -> ActionLog:
    """One finished (or failed) step, not written yet: `record_action` writes it now, `write_actions` with others."""
    now = timezone.now()
    finished = status != Outcome.IN_PROGRESS
    status_before, status_after = _statuses(status_before, status_after)
    return ActionLog(
        action_type=action_type,
        component=component,
        status=status,
        instance_id=instance_id,
        user=user if (user is not None and user.is_authenticated) else None,
        error_code=error_code,
        error_message=error_message[:4000],
        instance_status_before=status_before,
        instance_status_after=status_after,
        duration_ms=duration_ms if duration_ms is not None or not finished else 0,
        metadata=metadata or {},
        parent=parent,
        request_payload=request_payload,
        response_payload=response_payload,
        created_at=now,
        completed_at=now if finished else None,
    )


def record_action(action_type: str, **fields) -> ActionLog:
    """Write one finished (or failed) step (`new_action`'s arguments). Runs in the caller's transaction, if any."""
    row = new_action(action_type, **fields)
    row.save(force_insert=True)
    return row


def write_actions(rows: list[ActionLog]) -> None:
    """Write held rows with one insert, in their order (the timeline orders by time, then id), and empty the
    list: a row is written once."""
    if len(rows) == 1:
        rows[0].save(force_insert=True)  # a plain insert: bulk_create would wrap it in a transaction of its own
    elif rows:
        ActionLog.objects.bulk_create(rows)
    rows.clear()


@contextmanager
def held_actions() -> Iterator[list[ActionLog]]:
    """A list to hold step rows in (`action_step(..., into=held)`) until the change they lead to writes them
    (`transition(..., steps=held)`). What is still held when the block ends is written then, also when it
    raises: a failed step stays logged."""
    held: list[ActionLog] = []
    try:
        yield held
    finally:
        write_actions(held)


class StepFailed(Exception):
    """Raised inside `action_step` to mark the step failed with a code, without a traceback in the log."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@contextmanager
def action_step(action_type: str, *, component: str, instance_id=None, instance_status: str = "",
                metadata: dict | None = None, parent: ActionLog | None = None, user=None,
                into: list[ActionLog] | None = None) -> Iterator[ActionLog]:
    """Time a step: the row is written when the step ends, as success, or as failed if it raised.

    The step's code may add to `row.metadata` / `row.response_payload` before it ends. Writing only at
    the end keeps one query per step on the hot provisioning path. With `into` (a `held_actions()` list),
    the finished row is appended there instead, to be written with the change the steps lead to.
    `instance_status` is the instance's status during the step (a step does not change it: the move that
    follows does), shown as both its status before and after.
    """
    started = time.monotonic()
    row = ActionLog(
        action_type=action_type, component=component, instance_id=instance_id, metadata=metadata or {},
        parent=parent, user=user if (user is not None and user.is_authenticated) else None,
        created_at=timezone.now(), instance_status_before=instance_status, instance_status_after=instance_status,
    )
    try:
        yield row
    except Exception as exc:
        row.status = Outcome.FAILED
        row.error_code = failure_code(exc)
        row.error_message = str(exc)[:4000]
        raise
    else:
        row.status = Outcome.SUCCESS
    finally:
        row.duration_ms = int((time.monotonic() - started) * 1000)
        row.completed_at = timezone.now()
        if into is None:
            row.save()
        else:
            into.append(row)
