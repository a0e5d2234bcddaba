"""The instance status vocabulary: the statuses, the error codes, and every named set of statuses.

Each set is defined here once, under one name, and every app reads it from here (docs/ARCHITECTURE.md,
"The instance lifecycle"). A module that needs another grouping adds it here rather than spelling the
statuses out where it uses them.
"""

from django.db import models


class Status(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    BOOTING = "booting", "Booting"
    INSTALLING = "installing", "Installing"
    STARTING = "starting", "Starting"
    READY = "ready", "Ready"
    DRAINING = "draining", "Draining"
    TERMINATING = "terminating", "Terminating"
    TERMINATED = "terminated", "Terminated"
    ARCHIVED = "archived", "Archived"
    PROVISIONING_FAILED = "provisioning_failed", "Provisioning failed"
    STARTUP_FAILED = "startup_failed", "Startup failed"
    FAILED = "failed", "Failed"


class ErrorCode(models.TextChoices):
    MISSING_PARAMS = "MISSING_PARAMS"
    MISSING_MODEL = "MISSING_MODEL"
    INVALID_PROVIDER = "INVALID_PROVIDER"
    INVALID_ZONE = "INVALID_ZONE"
    INACTIVE_ZONE = "INACTIVE_ZONE"
    INVALID_INSTANCE_TYPE = "INVALID_INSTANCE_TYPE"
    INACTIVE_INSTANCE_TYPE = "INACTIVE_INSTANCE_TYPE"
    INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE = "INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE"
    INVALID_MODEL = "INVALID_MODEL"
    INCOMPATIBLE_MODEL_INSTANCE = "INCOMPATIBLE_MODEL_INSTANCE"
    MISSING_PROVIDER_CREDENTIALS = "MISSING_PROVIDER_CREDENTIALS"
    # No INVENTIV_CONTROL_PLANE_CIDRS: a cloud machine's engine would be open to anyone (README, "Providers").
    MISSING_CONTROL_PLANE_CIDRS = "MISSING_CONTROL_PLANE_CIDRS"
    # A secret the launch plan needs (HF_TOKEN for a gated model) is set nowhere.
    MISSING_MACHINE_SECRET = "MISSING_MACHINE_SECRET"
    PROVIDER_CREATE_FAILED = "PROVIDER_CREATE_FAILED"
    PROVIDER_START_FAILED = "PROVIDER_START_FAILED"
    PROVIDER_OUT_OF_STOCK = "PROVIDER_OUT_OF_STOCK"
    PROVIDER_QUOTA_EXCEEDED = "PROVIDER_QUOTA_EXCEEDED"
    STARTUP_TIMEOUT = "STARTUP_TIMEOUT"
    HEALTH_CHECK_FAILED = "HEALTH_CHECK_FAILED"
    WORKER_INSTALL_FAILED = "WORKER_INSTALL_FAILED"
    MODEL_LOAD_FAILED = "MODEL_LOAD_FAILED"
    HEARTBEAT_LOST = "HEARTBEAT_LOST"
    PROVIDER_DELETED = "PROVIDER_DELETED"


S = Status

# A request accepted and not yet booting: the provision run (and the re-queue sweep) works on these.
PROVISIONABLE = frozenset({S.PROVISIONING})
# The server was powered on: a health check that finds it running moves it on to installing.
JUST_BOOTED = frozenset({S.BOOTING})
# On the way to serving, once the provider has a server: the health sweep watches these.
STARTUP = frozenset({S.BOOTING, S.INSTALLING, S.STARTING})
# On the way to serving, the request included: capacity already paid for and coming (autoscaling).
COMING_UP = STARTUP | {S.PROVISIONING}
# The worker agent runs but its engine is not up yet: a registration moves these to `starting`.
BEFORE_STARTING = frozenset({S.BOOTING, S.INSTALLING})
# Serving, or finishing what it serves: the watchdog and the lost-heartbeat sweep watch these.
SERVING = frozenset({S.READY, S.DRAINING})
# Live: requested, starting, serving or draining (a pool's members). What the dashboard counts as active.
LIVE = COMING_UP | SERVING
# Failed, with a reason in the error code.
FAILED = frozenset({S.PROVISIONING_FAILED, S.STARTUP_FAILED, S.FAILED})
# The server is confirmed gone (or was never created): the worker token is revoked.
GONE = frozenset({S.TERMINATED, S.ARCHIVED})
# The termination was asked for: the terminate task and the terminator sweep delete the server.
BEING_TERMINATED = frozenset({S.TERMINATING})
# Termination asked for or done: terminating again changes nothing.
TERMINATION_REQUESTED = GONE | BEING_TERMINATED
# An operator may ask to terminate these.
TERMINABLE = frozenset(Status.values) - TERMINATION_REQUESTED
# Nothing more happens to these without an operator, and they own no server: a server tagged with their id
# is an orphan.
ENDED = GONE | {S.PROVISIONING_FAILED}
# The machine must stop serving: a heartbeat from it is answered `shutdown`.
SHUTDOWN = TERMINATION_REQUESTED | FAILED
# A sweep keeps these moving on their own; their rows refresh themselves in the dashboard.
TRANSITIONAL = COMING_UP | {S.DRAINING, S.TERMINATING}
# The provider has, or may soon have, a server for these: they may be paid for.
BILLABLE = LIVE | {S.TERMINATING, S.STARTUP_FAILED, S.FAILED}
# The startup path can run again on the same server.
REINSTALLABLE = frozenset({S.READY, S.STARTUP_FAILED, S.FAILED})
# Only a serving instance with nothing else under way can be drained.
DRAINABLE = frozenset({S.READY})

# Own, or may soon own, a server: the dashboard offers Terminate for these (a rejected request owns none).
OFFER_TERMINATE = TERMINABLE - ENDED


class Family(models.TextChoices):
    """How a status reads at a glance: each family has one colour, shared by every page (README, "Using it")."""

    LIVE = "live", "Live"  # serving
    TRANSITIONAL = "transitional", "Transitional"  # on its way somewhere: a sweep keeps it moving
    FAILED = "failed", "Failed"  # stopped with an error code
    ENDED = "ended", "Ended"  # gone: neutral, nothing to watch


# The family of every status, from the named sets above (a test checks each status is in exactly one).
STATUS_FAMILIES = {
    **dict.fromkeys(SERVING - TRANSITIONAL, Family.LIVE),
    **dict.fromkeys(TRANSITIONAL, Family.TRANSITIONAL),
    **dict.fromkeys(FAILED, Family.FAILED),
    **dict.fromkeys(GONE, Family.ENDED),
}
# The colour name of each family: the API's `status_color`, and the badge's CSS class `status-<family>`.
FAMILY_COLORS = {Family.LIVE: "green", Family.TRANSITIONAL: "blue", Family.FAILED: "red", Family.ENDED: "gray"}
STATUS_COLORS = {status: FAMILY_COLORS[family] for status, family in STATUS_FAMILIES.items()}


def status_family(status: str) -> str:
    """The family of `status` (an unknown status reads as ended: neutral)."""
    return STATUS_FAMILIES.get(status, Family.ENDED)
