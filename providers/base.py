"""The small interface every cloud adapter implements.

Adapters are handed plain data (no Inventiv models) and raise ProviderError when retrying cannot help, or
its subclass TransientProviderError when it can. The instances services decide what an error means for an instance.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from datetime import datetime

# Every server Inventiv creates carries these tags, so a retry or a sweep can find it again.
INVENTIV_TAG = "inventiv"
INSTANCE_TAG_PREFIX = "inventiv-instance="


def instance_tag(instance_id: str) -> str:
    return f"{INSTANCE_TAG_PREFIX}{instance_id}"


def server_name(instance_id: str) -> str:
    return f"inventiv-{instance_id}"


def instance_id_from_tags(tags: list[str]) -> str | None:
    for tag in tags:
        if tag.startswith(INSTANCE_TAG_PREFIX):
            return tag[len(INSTANCE_TAG_PREFIX):]
    return None


class ProviderError(Exception):
    """A provider call failed, and retrying the same call cannot help (bad request, out of stock, quota).

    `code` is the instance error code it maps to (PROVIDER_OUT_OF_STOCK, PROVIDER_QUOTA_EXCEEDED,
    MISSING_PROVIDER_CREDENTIALS...), or None for a generic failure of the step. `details` is what the
    provider said beyond its message (which argument, why), for the operator.
    """

    permanent = True

    def __init__(self, message: str, *, code: str | None = None, details=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return self.message


class TransientProviderError(ProviderError):
    """A provider call failed in a way that retrying later can fix (a timeout, a 5xx, throttling, a server
    in a transitional state). `retry_after` is how long the provider asked to wait, in seconds, when it said.

    The one exception class Celery tasks retry on (`autoretry_for`).
    """

    permanent = False

    def __init__(self, message: str, *, code: str | None = None, details=None, retry_after: float | None = None):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


def provider_error(message: str, *, permanent: bool, code: str | None = None, details=None,
                   retry_after: float | None = None) -> ProviderError:
    """The error class that fits: ProviderError when `permanent`, TransientProviderError otherwise."""
    if permanent:
        return ProviderError(message, code=code, details=details)
    return TransientProviderError(message, code=code, details=details, retry_after=retry_after)


class ServerState(str, enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"
    STOPPING = "stopping"
    LOCKED = "locked"
    GONE = "gone"


@dataclass(frozen=True)
class ServerSpec:
    instance_id: str
    zone: str
    commercial_type: str
    name: str
    tags: list[str]
    # Secrets travel in user_data and runtime_env (worker token, engine key, HF_TOKEN): both stay out of the
    # spec's repr, so a log line or a traceback that shows a spec shows none of them.
    user_data: str = field(default="", repr=False)
    # Provider-specific parameters of the type (the OS image, the boot type).
    allocation_params: dict = field(default_factory=dict)
    # The root volume the launch plan chose (catalog/launch_plan.py): its type and size in GB; none: the
    # image's default volume.
    root_volume_type: str = ""
    root_volume_gb: int = 0
    # Values the machine needs at start (worker token, engine API key, model). The Mock process runtime
    # passes them as environment variables; cloud adapters ignore them (they travel in user_data).
    runtime_env: dict = field(default_factory=dict, repr=False)
    # A machine that exists already (the static provider): where it is reached. Clouds ignore it.
    address: str = ""
    # False when no earlier attempt can have created this instance's server (its first create): the
    # adapter then skips looking for one, which costs a provider call (a query on the Mock).
    may_exist: bool = True


@dataclass(frozen=True)
class ServerInfo:
    server_id: str
    zone: str
    state: ServerState
    name: str = ""
    tags: list[str] = field(default_factory=list)
    public_ip: str | None = None
    created_at: datetime | None = None
    commercial_type: str = ""
    # Adapter-specific extras (the Mock process runtime puts its loopback ports here).
    metadata: dict = field(default_factory=dict)

    @property
    def instance_id(self) -> str | None:
        return instance_id_from_tags(self.tags)


@dataclass(frozen=True)
class TypeOffer:
    """A commercial type as the provider sells it, with its availability per zone."""

    code: str
    gpu_count: int
    vram_per_gpu_gb: int
    vcpu: int
    ram_gb: int
    hourly_price: float
    gpu_model: str = ""
    availability: dict[str, str] = field(default_factory=dict)  # zone -> available | scarce | shortage
    # Root volume types the type accepts -> [min GB, max GB] (empty when the provider does not say).
    root_volumes: dict[str, list[int]] = field(default_factory=dict)


class CloudProvider(abc.ABC):
    """One cloud. Every method is safe to call again after a failure or a crash."""

    code: str = ""

    def check_available(self) -> None:
        """Raise ProviderError(code="MISSING_PROVIDER_CREDENTIALS") when unusable."""

    @abc.abstractmethod
    def create_server(self, spec: ServerSpec) -> ServerInfo: ...

    @abc.abstractmethod
    def start_server(self, server_id: str, *, zone: str) -> ServerInfo | None:
        """Power the server on. Returns the server as the power-on left it where the provider's answer says
        (the Mock), or None where it does not (Scaleway answers with a task): then ask `get_server`."""

    @abc.abstractmethod
    def get_server(self, server_id: str, *, zone: str) -> ServerInfo | None:
        """The server's current state, or None when the provider no longer knows it."""

    @abc.abstractmethod
    def list_servers(self, *, zone: str, tag: str = INVENTIV_TAG) -> list[ServerInfo]:
        """Every server in `zone` carrying `tag` (all pages)."""

    @abc.abstractmethod
    def terminate_server(self, server_id: str, *, zone: str) -> None:
        """Ask for the server to be powered off and deleted. A server already gone is not an error."""

    @abc.abstractmethod
    def delete_volumes(self, server_id: str, *, zone: str) -> None:
        """Delete the block volumes the server left behind (no-op where none exist)."""

    @abc.abstractmethod
    def fetch_catalog(self, *, zones: list[str]) -> list[TypeOffer]:
        """GPU commercial types with hourly prices and availability in `zones`."""
