"""What the provider's view of a starting machine means for its instance (pure decisions, no I/O).

Machines that run the worker agent (every real cloud, and Mock runtimes that spawn one) become ready by
heartbeat: the provider can only say that the server runs. A Mock machine of the `none` runtime runs
nothing, so a running server is all the health there is.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from django.conf import settings

from catalog.runtime_settings import get_setting
from instances.models import Instance
from instances.status import Status
from providers.base import ServerInfo, ServerState



class Verdict(enum.Enum):
    WAIT = "wait"  # not there yet, nothing to do
    READY = "ready"  # healthy: the instance serves
    INSTALLING = "installing"  # the server runs; its worker agent installs and will report by heartbeat
    GONE = "gone"  # the provider no longer knows the server
    TIMED_OUT = "timed_out"  # past the startup deadline
    REPOWER = "repower"  # the server fell back to stopped after its power-on: power it on once more
    OUT_OF_STOCK = "out_of_stock"  # it fell back again after that: the provider has no stock for it


# How long a server powered on again may take to show it runs before a fall back counts as a second one.
POWER_ON_RETRY_GRACE_S = 120
# What `state_detail` says when the provider took the machine back (Scaleway reports stock running out
# after a power-on asynchronously: the server returns to `stopped`, and its detail may say why).
OUT_OF_STOCK_DETAIL = "out of stock"


def fell_back(server: ServerInfo) -> bool:
    """The provider stopped a server Inventiv had powered on (stock ran out after the power-on)."""
    detail = str(server.metadata.get("state_detail") or "").lower()
    return server.state == ServerState.STOPPED or OUT_OF_STOCK_DETAIL in detail


def runs_worker_agent(instance: Instance) -> bool:
    return not (instance.provider.is_mock and settings.INVENTIV_MOCK_RUNTIME == "none")


def startup_deadline(instance: Instance, *, now: datetime) -> datetime:
    """When a machine starting now must be ready by (model downloads make agent machines slower). A host
    the operator runs has until its join token expires to join, and the install timeout after that."""
    if instance.provider.is_static:
        return now + timedelta(seconds=settings.JOIN_TOKEN_TTL_S + get_setting("startup_timeout_install_s"))
    key = "startup_timeout_install_s" if runs_worker_agent(instance) else "startup_timeout_s"
    return now + timedelta(seconds=get_setting(key))


def startup_verdict(instance: Instance, server: ServerInfo | None, *, now: datetime, agent: bool) -> Verdict:
    """Decide what happens to a booting/installing/starting `instance` whose server looks like `server`."""
    if server is None or server.state == ServerState.GONE:
        return Verdict.GONE
    if fell_back(server):
        # Every startup status comes after the power-on, so a stopped server was stopped by the provider.
        if instance.power_on_retried_at is None:
            return Verdict.REPOWER
        if now >= instance.power_on_retried_at + timedelta(seconds=POWER_ON_RETRY_GRACE_S):
            return Verdict.OUT_OF_STOCK
    if server.state == ServerState.RUNNING and not agent:
        return Verdict.READY
    if instance.startup_deadline_at is not None and now >= instance.startup_deadline_at:
        return Verdict.TIMED_OUT
    if server.state == ServerState.RUNNING and instance.status == Status.BOOTING:
        return Verdict.INSTALLING
    return Verdict.WAIT


def serving_verdict(server: ServerInfo | None) -> Verdict:
    """The watchdog's question for a ready/draining machine: is its server still there?"""
    if server is None or server.state == ServerState.GONE:
        return Verdict.GONE
    return Verdict.WAIT
