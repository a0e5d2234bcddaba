"""The one door for status changes: `transition()`, and the unit of work it opens.

A move locks the instance's row, checks the transition table, writes the instance and its audit row in one
transaction, and sends the `status_changed` signal (and runs whatever the caller enqueued with
`delay_on_commit`) only after the commit. `transition()` makes one move; a `UnitOfWork` makes several
moves of one instance (booting, then ready) and writes them as one update and one insert
(docs/ARCHITECTURE.md, "The instance lifecycle").
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

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


# What a unit of work copies onto the instance object it was given, once it ends.
CONCRETE_FIELDS = [concrete.attname for concrete in Instance._meta.concrete_fields]


def can_transition(before: str, after: str) -> bool:
    return after in ALLOWED.get(before, frozenset())


@dataclass(frozen=True)
class Move:
    """One status change as its caller asks for it, and the audit row it writes.

    `allowed_from` narrows the statuses this move may start from (a compare-and-set): an instance found in
    any other status is left alone, because another worker got there first. `fields` are saved with the
    status; an `error_code` marks the audit row failed.
    """

    to: str
    action_type: str
    _: KW_ONLY
    reason: str = ""
    actor: Any = None
    component: str = Component.ORCHESTRATOR
    error_code: str = ""
    error_message: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    allowed_from: frozenset[str] | None = None


class UnitOfWork:
    """The moves of one instance and the action-log rows that go with them, written once.

        with UnitOfWork(instance, steps=held) as work:
            work.move(Move(Status.BOOTING, "INSTANCE_CREATED", fields=...))
            work.move(Move(Status.READY, "INSTANCE_READY"))

    Entering opens a transaction (none of its own inside a caller's: a savepoint costs two round trips, and
    a database error fails the caller's transaction too, whose other writes belong with the moves anyway)
    and reads the row locked (`work.instance`; Instance.DoesNotExist when there is none). Each move changes
    that object in memory and holds its audit row; leaving writes every changed field in one update, then
    the rows in one insert, in their order: `steps` first (rows of what led here, from
    `action_step(..., into=held)`; the list is emptied), then the unit's own (`log()`ged rows and the
    moves' audit rows) as they came. The rows are written also when nothing moved (the steps took place
    all the same). An instance object the unit was given is brought up to date when it ends.

    An error leaving the block rolls everything back, the unit's own rows included (held `steps` stay in
    their list, for the `held_actions()` block that owns them to write). `InvalidTransition` is the
    exception: the block ends as it would have (what came before is written) and the error is raised past
    the transaction, so that a caller's transaction stays usable.
    """

    def __init__(self, instance: Instance | Any, *, steps: list[ActionLog] | None = None):
        self._given = instance if isinstance(instance, Instance) else None
        self._pk = instance.pk if isinstance(instance, Instance) else instance
        self._steps = steps if steps is not None else []
        self._rows: list[ActionLog] = []  # this unit's own: logged, and the moves' audit rows
        self._changed: set[str] = set()
        self.instance: Instance

    def __enter__(self) -> UnitOfWork:
        self._atomic = transaction.atomic(savepoint=False)
        self._atomic.__enter__()
        try:
            self.instance = Instance.objects.select_for_update().get(pk=self._pk)
        except Instance.DoesNotExist:
            self._atomic.__exit__(None, None, None)  # nothing was written: a caller's transaction stays usable
            raise
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is not None and not issubclass(exc_type, InvalidTransition):
            self._atomic.__exit__(exc_type, exc, traceback)
            return False
        try:
            if self._changed:
                self.instance.save(update_fields=sorted(self._changed))
                self._changed.clear()
            write_actions([*self._steps, *self._rows])
            self._steps.clear()
            self._rows.clear()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._atomic.__exit__(None, None, None)
        if self._given is not None:
            for name in CONCRETE_FIELDS:
                setattr(self._given, name, getattr(self.instance, name))
        return False

    def move(self, move: Move) -> bool:
        """Apply `move` to the locked instance; True when it moved.

        Idempotent: an instance already in `move.to`, or in a status outside `move.allowed_from`, is left as
        it is, with no audit row. Raises InvalidTransition when the table forbids the move.
        """
        locked, before = self.instance, self.instance.status
        if before == move.to or (move.allowed_from is not None and before not in move.allowed_from):
            return False
        if not can_transition(before, move.to):
            raise InvalidTransition(locked.pk, before, move.to)
        now = timezone.now()
        changes: dict[str, Any] = {"status": move.to, "status_changed_at": now}
        phase_field = PHASE_FIELDS.get(move.to)
        if phase_field and getattr(locked, phase_field) is None:
            changes[phase_field] = now
        if move.error_code:
            changes.update(error_code=move.error_code, error_message=move.error_message)
        changes.update(move.fields)
        self.change(**changes)
        self._rows.append(new_action(
            move.action_type, component=move.component, status="failed" if move.error_code else "success",
            instance_id=locked.pk, user=move.actor, error_code=move.error_code, error_message=move.error_message,
            status_before=before, status_after=move.to,
            metadata={**move.metadata, **({"reason": move.reason} if move.reason else {})},
        ))
        transaction.on_commit(
            lambda: status_changed.send(sender=Instance, instance=locked, before=before, after=move.to)
        )
        return True

    def change(self, **fields) -> None:
        """Set fields of the locked instance without a move; they are written with the moves' update."""
        for name, value in fields.items():
            setattr(self.instance, name, value)
        self._changed.update(fields)

    def log(self, row: ActionLog) -> None:
        """Hold an action-log row, written after the rows held before it."""
        self._rows.append(row)


def transition(instance: Instance | Any, move: Move, *, steps: list[ActionLog] | None = None) -> tuple[Instance, bool]:
    """Make one move (a `UnitOfWork` of one); return (the fresh instance, whether it moved).

    `instance` is an Instance (brought up to date) or an id; `steps` as in `UnitOfWork`.
    """
    with UnitOfWork(instance, steps=steps) as work:
        moved = work.move(move)
    return work.instance, moved
