"""What an operator does to the Mock cloud by hand (README, "The Mock cloud"): arm and disarm faults for the
calls to come, and act on one server as a failing machine or a real cloud's console would: kill its worker
agent (the machine stays up), crash its engine (its agent restarts it), delete it (it is gone).

Plain functions over the Mock's rows; the staff API and the admin (catalog/mock_cloud*.py) call them and
audit what they did.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from providers.base import ServerState
from providers.mock import MockOperationError, inject_fault, runtime_of, server_state, vanish_server
from providers.models import MockFault, MockServer

# The operations on one server, by the name the API and the admin use.
KILL_AGENT = "kill_agent"
CRASH_ENGINE = "crash_engine"
DELETE_SERVER = "delete"
OPERATIONS = (KILL_AGENT, CRASH_ENGINE, DELETE_SERVER)


@dataclass(frozen=True)
class ServerView:
    """A Mock server as the operator sees it: its state from its timestamps, and whether its agent runs."""

    server: MockServer
    state: ServerState
    agent_running: bool | None


def view_server(server: MockServer) -> ServerView:
    state = server_state(server, timezone.now())
    agent = runtime_of(server).agent_running(server) if state != ServerState.GONE and server.started_at else None
    return ServerView(server=server, state=state, agent_running=agent)


def arm_fault(*, kind: str, zone: str = "", commercial_type: str = "", remaining: int | None = 1,
              permanent: bool = True, delay_s: float = 0, message: str = "") -> MockFault:
    """Arm a fault for the next `remaining` matching calls (None: every call until disarmed)."""
    return inject_fault(kind, zone=zone, commercial_type=commercial_type, remaining=remaining,
                        permanent=permanent, delay_s=delay_s, message=message)


def disarm_fault(fault: MockFault) -> None:
    fault.delete()


def operate(server: MockServer, operation: str) -> ServerView:
    """Apply `operation` (one of OPERATIONS) to `server` and answer with the server as it is after.

    Raises MockOperationError when it cannot apply: the server is deleted, or runs nothing to kill."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown Mock operation {operation!r} (known: {', '.join(OPERATIONS)})")
    if server_state(server, timezone.now()) == ServerState.GONE:
        raise MockOperationError(f"Mock server {server.pk} is deleted")
    if operation == DELETE_SERVER:
        vanish_server(str(server.pk))
    elif server.started_at is None:
        raise MockOperationError(f"Mock server {server.pk} is not powered on")
    elif operation == KILL_AGENT:
        runtime_of(server).kill_agent(server)
    else:
        runtime_of(server).crash_engine(server)
    server.refresh_from_db()
    return view_server(server)
