"""Writing the action log. Every step of every lifecycle goes through `record_action` or `action_step`."""

from __future__ import annotations

import time
from contextlib import contextmanager
from collections.abc import Iterator

from django.utils import timezone

from monitoring.models import ActionLog

Component = ActionLog.Component
Outcome = ActionLog.Status


def record_action(
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
    """Write one finished (or failed) step. Runs in the caller's transaction, if any."""
    now = timezone.now()
    return ActionLog.objects.create(
        action_type=action_type,
        component=component,
        status=status,
        instance_id=instance_id,
        user=user if (user is not None and user.is_authenticated) else None,
        error_code=error_code,
        error_message=error_message[:4000],
        instance_status_before=status_before,
        instance_status_after=status_after,
        duration_ms=duration_ms,
        metadata=metadata or {},
        parent=parent,
        request_payload=request_payload,
        response_payload=response_payload,
        created_at=now,
        completed_at=None if status == Outcome.IN_PROGRESS else now,
    )


class StepFailed(Exception):
    """Raised inside `action_step` to mark the step failed with a code, without a traceback in the log."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@contextmanager
def action_step(action_type: str, *, component: str, instance_id=None, metadata: dict | None = None,
                parent: ActionLog | None = None, user=None) -> Iterator[ActionLog]:
    """Time a step: the row is written when the step ends, as success, or as failed if it raised.

    The step's code may add to `row.metadata` / `row.response_payload` before it ends. Writing only at
    the end keeps one query per step on the hot provisioning path.
    """
    started = time.monotonic()
    row = ActionLog(
        action_type=action_type, component=component, instance_id=instance_id, metadata=metadata or {},
        parent=parent, user=user if (user is not None and user.is_authenticated) else None,
        created_at=timezone.now(),
    )
    try:
        yield row
    except Exception as exc:
        row.status = Outcome.FAILED
        row.error_code = getattr(exc, "code", None) or type(exc).__name__
        row.error_message = str(exc)[:4000]
        raise
    else:
        row.status = Outcome.SUCCESS
    finally:
        row.duration_ms = int((time.monotonic() - started) * 1000)
        row.completed_at = timezone.now()
        row.save()
