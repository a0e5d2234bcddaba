"""The one door for status changes: `transition()`.

It locks the row, checks the transition table, writes the instance and its audit row in one
transaction, and runs side effects (task enqueues, notifications) only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from instances.models import Instance
from instances.status import Status
from monitoring.models import ActionLog
from monitoring.services import Component, new_action, write_actions

# Sent after commit: sender=Instance, instance=..., before=..., after=... . Apps above instances (router,
# autoscaling, finops) listen to it instead of instances calling them.
status_changed = Signal()

S = Status
ALLOWED: dict[str, frozenset[str]] = {
    S.PROVISIONING: frozenset({S.BOOTING, S.PROVISIONING_FAILED, S.FAILED, S.TERMINATING, S.TERMINATED}),
    S.BOOTING: frozenset({S.INSTALLING, S.STARTING, S.READY, S.STARTUP_FAILED, S.FAILED, S.TERMINATING, S.TERMINATED}),
    S.INSTALLING: frozenset({S.STARTING, S.READY, S.STARTUP_FAILED, S.FAILED, S.TERMINATING, S.TERMINATED}),
    S.STARTING: frozenset({S.READY, S.STARTUP_FAILED, S.FAILED, S.TERMINATING, S.TERMINATED}),
    S.READY: frozenset({S.DRAINING, S.INSTALLING, S.STARTING, S.FAILED, S.TERMINATING, S.TERMINATED}),
    S.DRAINING: frozenset({S.READY, S.FAILED, S.TERMINATING, S.TERMINATED}),
    S.TERMINATING: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset({S.ARCHIVED}),
    S.ARCHIVED: frozenset(),
    # A rejected request has no server: it is archived as it is. One that failed after the server was
    # created is terminated first.
    S.PROVISIONING_FAILED: frozenset({S.ARCHIVED, S.TERMINATING, S.TERMINATED}),
    S.STARTUP_FAILED: frozenset({S.TERMINATING, S.TERMINATED, S.INSTALLING, S.STARTING}),
    S.FAILED: frozenset({S.TERMINATING, S.TERMINATED, S.INSTALLING, S.STARTING}),
}

# The timestamp each status stamps when first reached.
PHASE_FIELDS = {
    S.BOOTING: "booted_at",
    S.READY: "ready_at",
    S.DRAINING: "draining_at",
    S.TERMINATING: "terminating_at",
    S.TERMINATED: "terminated_at",
    S.ARCHIVED: "archived_at",
    S.PROVISIONING_FAILED: "failed_at",
    S.STARTUP_FAILED: "failed_at",
    S.FAILED: "failed_at",
}


class InvalidTransition(Exception):
    def __init__(self, instance_id, before: str, after: str):
        super().__init__(f"instance {instance_id} cannot go from {before} to {after}")
        self.before = before
        self.after = after


def can_transition(before: str, after: str) -> bool:
    return after in ALLOWED.get(before, frozenset())


def transition(
    instance: Instance | str,
    to: str,
    *,
    action_type: str,
    reason: str = "",
    actor=None,
    component: str = Component.ORCHESTRATOR,
    error_code: str = "",
    error_message: str = "",
    fields: dict | None = None,
    metadata: dict | None = None,
    on_commit: Callable[[], None] | None = None,
    allowed_from: frozenset[str] | None = None,
    steps: list[ActionLog] | None = None,
    already_locked: bool = False,
    unsaved: set[str] | None = None,
) -> tuple[Instance, bool]:
    """Move `instance` to status `to`; return (fresh instance, whether it changed).

    Idempotent: an instance already in `to` is returned unchanged (no audit row, no side effect).
    `allowed_from` narrows the statuses this caller may move from (a compare-and-set): a row found in
    any other status is left alone and reported unchanged, because another worker got there first.
    Raises InvalidTransition when the table forbids the move. `fields` are saved with the status;
    `on_commit` runs after the transaction commits. `steps` are held action-log rows of what led here
    (`action_step(..., into=...)`): they are written before the move's own row, in the same insert and
    transaction, and also when there is no move (they took place all the same); the list is emptied.
    `already_locked`: `instance` is up to date with an earlier move in the current transaction, which holds
    its row locked: it is used as it is instead of being read again.
    `unsaved`: a move another one follows at once in the caller's transaction (booting, then ready) is not
    written: the fields it changed are added to this set and its row stays in `steps`, and `write_moves()`
    writes them with the next move's, in one update and one insert.

    Inside a caller's transaction this takes no savepoint of its own (two round trips each): a database
    error here fails the caller's transaction too, whose other writes belong with the move anyway.
    """
    instance_id = instance.pk if isinstance(instance, Instance) else instance
    steps = steps if steps is not None else []
    with transaction.atomic(savepoint=False):
        locked = instance if already_locked else Instance.objects.select_for_update().get(pk=instance_id)
        before = locked.status
        moving = before != to and (allowed_from is None or before in allowed_from)
        allowed = can_transition(before, to)
        if moving and allowed:
            now = timezone.now()
            locked.status = to
            locked.status_changed_at = now
            update = {"status", "status_changed_at"}
            phase_field = PHASE_FIELDS.get(to)
            if phase_field and getattr(locked, phase_field) is None:
                setattr(locked, phase_field, now)
                update.add(phase_field)
            if error_code:
                locked.error_code, locked.error_message = error_code, error_message
                update |= {"error_code", "error_message"}
            for name, value in (fields or {}).items():
                setattr(locked, name, value)
                update.add(name)
            if unsaved is None:
                locked.save(update_fields=sorted(update))
            else:
                unsaved |= update
            steps.append(new_action(
                action_type,
                component=component,
                status="failed" if error_code else "success",
                instance_id=locked.pk,
                user=actor,
                error_code=error_code,
                error_message=error_message,
                status_before=before,
                status_after=to,
                metadata={**(metadata or {}), **({"reason": reason} if reason else {})},
            ))
            transaction.on_commit(
                lambda: status_changed.send(sender=Instance, instance=locked, before=before, after=to)
            )
            if on_commit is not None:
                transaction.on_commit(on_commit)
        if unsaved is None:
            write_actions(steps)
    if moving and not allowed:
        # Raised out here, past the transaction block, so that a caller's transaction stays usable.
        raise InvalidTransition(instance_id, before, to)
    return locked, moving


def write_moves(instance: Instance, unsaved: set[str], steps: list[ActionLog]) -> None:
    """Write the moves `transition(..., unsaved=unsaved, steps=steps)` left unwritten: the instance's changed
    fields in one update, the held rows in one insert. In the transaction of those moves (it holds the lock)."""
    if unsaved:
        instance.save(update_fields=sorted(unsaved))
        unsaved.clear()
    write_actions(steps)
