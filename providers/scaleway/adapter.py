"""ScalewayProvider: the CloudProvider that `providers.registry` loads for the `scaleway` adapter. It reads
its configuration and hands each call to the module of its resource."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from scaleway_core.client import Client

from providers.base import INVENTIV_TAG, CloudProvider, ProviderError, ServerInfo, ServerSpec, TypeOffer
from providers.scaleway import offers, servers, volumes
from providers.scaleway.client import DEFAULT_CALL_TIMEOUT_S, PAGE_SIZE, ScalewayClient
from providers.scaleway.config import (
    DEFAULT_API_URL,
    ENV_ACCESS_KEY,
    ENV_API_URL,
    ENV_PROJECT_ID,
    ENV_SECRET_KEY,
    HOW_TO_CONFIGURE,
    configuration_problems,
    setting,
)
from providers.scaleway.security_groups import DEFAULT_WORKER_PORTS, SECURITY_GROUP_NAME, Ingress, WorkerSecurityGroups


class ScalewayProvider(CloudProvider):
    code = "scaleway"

    def __init__(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        project_id: str | None = None,
        api_url: str | None = None,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        worker_ports: Iterable[int] = DEFAULT_WORKER_PORTS,
        security_group_name: str = SECURITY_GROUP_NAME,
        page_size: int = PAGE_SIZE,
        control_plane_cidrs: Iterable[str] | None = None,
        allow_public_engines: bool | None = None,
        ssh_cidrs: Iterable[str] | None = None,
    ):
        """Arguments left None come from the environment (the network ones from Django settings, README
        "Configuration"). Nothing here raises: an adapter that cannot work says so on check_available() and
        on every call; one without INVENTIV_CONTROL_PLANE_CIDRS refuses only to create servers."""
        problems: list[str] = []
        access_key = access_key or setting(ENV_ACCESS_KEY, problems, from_file=True)
        secret_key = secret_key or setting(ENV_SECRET_KEY, problems, from_file=True)
        self.project_id = project_id or setting(ENV_PROJECT_ID, problems)
        self.api_url = (api_url or setting(ENV_API_URL, problems) or DEFAULT_API_URL).rstrip("/")
        self.call_timeout_s = float(call_timeout_s)
        self.worker_ports = tuple(int(port) for port in worker_ports)
        self.ingress = _ingress(self.worker_ports, control_plane_cidrs, allow_public_engines, ssh_cidrs)
        self.security_group_name = security_group_name
        self.page_size = page_size
        self._problems = problems + configuration_problems(access_key, secret_key, self.project_id, self.api_url)
        self._client: ScalewayClient | None = None
        self._security_groups: WorkerSecurityGroups | None = None  # keeps each zone's group id for the process
        if not self._problems:
            sdk_client = Client(
                access_key=access_key, secret_key=secret_key, default_project_id=self.project_id, api_url=self.api_url
            )
            try:
                self._client = ScalewayClient(
                    sdk_client, project_id=self.project_id, call_timeout_s=self.call_timeout_s, page_size=page_size
                )
            except ValueError:
                # The SDK's own validation messages quote the secret key: never pass them on.
                self._problems.append("the Scaleway SDK rejected the configuration")
            else:
                self._security_groups = WorkerSecurityGroups(self._client, name=security_group_name,
                                                             ingress=self.ingress)

    def __repr__(self) -> str:
        configured = "configured" if not self._problems else "not configured"
        return f"<ScalewayProvider {self.api_url} project={self.project_id or '-'} {configured}>"

    def check_available(self) -> None:
        if self._problems:
            raise ProviderError(
                f"Scaleway is not configured: {'; '.join(self._problems)}. {HOW_TO_CONFIGURE}",
                code="MISSING_PROVIDER_CREDENTIALS",
            )

    @property
    def client(self) -> ScalewayClient:
        """The configured client; raises MISSING_PROVIDER_CREDENTIALS when there is none."""
        self.check_available()
        return self._client

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        return servers.create_server(self.client, spec, security_groups=self._security_groups)

    def start_server(self, server_id: str, *, zone: str) -> None:
        servers.start_server(self.client, server_id, zone=zone)

    def get_server(self, server_id: str, *, zone: str) -> ServerInfo | None:
        return servers.get_server(self.client, server_id, zone=zone)

    def list_servers(self, *, zone: str, tag: str = INVENTIV_TAG) -> list[ServerInfo]:
        return servers.list_servers(self.client, zone=zone, tag=tag)

    def terminate_server(self, server_id: str, *, zone: str) -> None:
        servers.terminate_server(self.client, server_id, zone=zone)

    def delete_volumes(self, server_id: str, *, zone: str) -> None:
        volumes.delete_volumes(self.client, server_id, zone=zone)

    def fetch_catalog(self, *, zones: list[str]) -> list[TypeOffer]:
        return offers.fetch_catalog(self.client, zones=zones)


def _ingress(worker_ports, control_plane_cidrs, allow_public, ssh_cidrs) -> Ingress:
    """Who may reach the workers: the arguments given, else the settings as they are when the adapter is made."""
    return Ingress(
        worker_ports=worker_ports,
        control_plane_cidrs=tuple(settings.CONTROL_PLANE_CIDRS if control_plane_cidrs is None
                                  else control_plane_cidrs),
        allow_public=settings.ALLOW_PUBLIC_ENGINES if allow_public is None else allow_public,
        ssh_cidrs=tuple(settings.SSH_CIDRS if ssh_cidrs is None else ssh_cidrs),
    )
