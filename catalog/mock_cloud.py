"""The Mock cloud's console for operators (README, "The Mock cloud"): faults armed and disarmed, and a server's
agent killed, its engine crashed or the server deleted, each audited (monitoring/audit.py).

The Mock cloud itself (providers/mock*.py) knows no Inventiv app; this module lives in `catalog`, the app that
owns the providers' rows and may use both `providers` and `monitoring` (docs/ARCHITECTURE.md, "Which part may
use which"). The staff API (`mock_cloud_api.py`) and the admin (`mock_cloud_admin.py`) call it.
"""

from __future__ import annotations

from django.db import transaction

from catalog.models import Provider, Zone
from monitoring.audit import Verb, action_type, describe, record_change, snapshot
from providers.mock import MOCK_TYPES
from providers.mock_console import CRASH_ENGINE, DELETE_SERVER, KILL_AGENT, ServerView, arm_fault, operate
from providers.models import MockFault, MockServer

AUDIT_AREA = "MOCK_FAULT"
# The audit row each operation on a server writes.
OPERATION_ACTIONS = {KILL_AGENT: "MOCK_AGENT_KILL", CRASH_ENGINE: "MOCK_ENGINE_CRASH",
                     DELETE_SERVER: "MOCK_SERVER_DELETE"}
# What the audit row says changed, before -> after.
OPERATION_CHANGES = {
    KILL_AGENT: ("agent", "running", "killed"),
    CRASH_ENGINE: ("engine", "running", "crashed (its agent restarts it)"),
    DELETE_SERVER: ("server", "exists", "deleted"),
}
# Faults that wait this long at most: a longer one would hold a Celery worker past any task deadline.
MAX_FAULT_DELAY_S = 3600


def mock_zone_codes() -> list[str]:
    return list(Zone.objects.filter(region__provider__adapter=Provider.Adapter.MOCK).values_list("code", flat=True))


def fault_problems(*, zone: str, commercial_type: str, remaining: int | None, delay_s: float) -> dict[str, str]:
    """{field: reason} for what the Mock cloud would never match or honour; empty when the fault is fine."""
    problems = {}
    if zone and zone not in mock_zone_codes():
        problems["zone"] = f"{zone!r} is not a Mock zone (known: {', '.join(mock_zone_codes()) or 'none'})."
    codes = [offer.code for offer in MOCK_TYPES]
    if commercial_type and commercial_type not in codes:
        problems["commercial_type"] = f"{commercial_type!r} is not a Mock type (known: {', '.join(codes)})."
    if remaining is not None and remaining < 1:
        problems["remaining"] = "Must be at least 1 (or null: every matching call until disarmed)."
    if not 0 <= delay_s <= MAX_FAULT_DELAY_S:
        problems["delay_s"] = f"Must be between 0 and {MAX_FAULT_DELAY_S} seconds."
    return problems


def arm_audited_fault(*, user, source: str, **fields) -> MockFault:
    """Arm a fault (fields as `providers.mock_console.arm_fault` takes them) and audit it."""
    with transaction.atomic():
        fault = arm_fault(**fields)
        record_change(action_type(AUDIT_AREA, Verb.CREATE), target=fault, user=user, source=source,
                      after=snapshot(fault))
    return fault


def disarm_audited_fault(fault: MockFault, *, user, source: str) -> None:
    with transaction.atomic():
        before, target = snapshot(fault), describe(fault)
        fault.delete()
        record_change(action_type(AUDIT_AREA, Verb.DELETE), target=target, user=user, source=source, before=before)


def operate_audited(server: MockServer, operation: str, *, user, source: str) -> ServerView:
    """Apply `operation` to `server` (providers.mock_console.operate) and audit it. Raises MockOperationError
    (nothing done, nothing written) when it does not apply."""
    view = operate(server, operation)
    field, before, after = OPERATION_CHANGES[operation]
    record_change(OPERATION_ACTIONS[operation], target=server, user=user, source=source,
                  before={field: before}, after={field: after},
                  metadata={"instance_id": server.instance_id or None, "state": view.state.value})
    return view

