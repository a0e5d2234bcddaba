"""Scaleway GPU Instances through the official `scaleway` SDK.

Three things the SDK does not do for us, done here:
- deadlines: the SDK calls `requests` with no timeout, so every HTTP call goes through `_DeadlineMixin`;
- one error type: every SDK, HTTP and network error becomes a ProviderError that says whether a retry can
  help and, where it matters to the operator, which instance error code it maps to;
- idempotency: every server carries `inventiv-instance=<id>` in its tags, and create_server returns the
  server already carrying that tag instead of creating a second one.

Volumes: GPU types boot from Block Storage, whose volumes survive the server. At creation each volume is
tagged `inventiv-server=<server id>`, so delete_volumes can still find them once the server is gone.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import requests
from scaleway.block.v1alpha1.api import BlockV1Alpha1API
from scaleway.instance.v1 import (
    SecurityGroupPolicy,
    SecurityGroupRuleAction,
    SecurityGroupRuleDirection,
    SecurityGroupRuleProtocol,
    Server,
    SetSecurityGroupRulesRequestRule,
    VolumeServerTemplate,
)
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway_core.api import APILogger, ScalewayException, ValidationError
from scaleway_core.client import Client
from scaleway_core.validations.string_validation import is_access_key, is_project_id, is_secret_key, is_url

from providers.base import (
    INVENTIV_TAG,
    CloudProvider,
    ProviderError,
    provider_error,
    ServerInfo,
    ServerSpec,
    ServerState,
    TransientProviderError,
    TypeOffer,
    instance_tag,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

ENV_ACCESS_KEY = "SCW_ACCESS_KEY"
ENV_SECRET_KEY = "SCW_SECRET_KEY"
ENV_PROJECT_ID = "SCW_DEFAULT_PROJECT_ID"
ENV_API_URL = "SCW_API_URL"
DEFAULT_API_URL = "https://api.scaleway.com"

DEFAULT_CALL_TIMEOUT_S = 30.0
# Opening a connection to the API gateway is quick when the network works: a slow connect is not worth
# the whole call budget.
MAX_CONNECT_TIMEOUT_S = 10.0
DEFAULT_WORKER_PORTS = (8000, 8081)  # vLLM, worker agent
SECURITY_GROUP_NAME = "inventiv-workers"
# The Instance API serves at most 100 items per page; fewer pages means fewer round trips.
PAGE_SIZE = 100
# A catalog never has this many pages; the bound stops a misbehaving endpoint from looping us forever.
MAX_PAGES = 50
USER_DATA_KEY = "cloud-init"
SERVER_TAG_PREFIX = "inventiv-server="
GB = 10**9  # volume sizes are decimal gigabytes
GIB = 2**30  # RAM and GPU memory are reported in binary gigabytes
MAX_ERROR_TEXT = 300
# A Retry-After longer than this is taken as this: a task waits, it does not sleep for hours.
MAX_RETRY_AFTER_S = 600

_STATES = {
    "running": ServerState.RUNNING,
    "starting": ServerState.STARTING,
    "stopped": ServerState.STOPPED,
    "stopped in place": ServerState.STOPPED,  # the API's spelling
    "stopped_in_place": ServerState.STOPPED,  # the SDK enum's spelling
    "stopping": ServerState.STOPPING,
    "locked": ServerState.LOCKED,
}
_NOT_BOOTED = {"stopped", "stopped in place", "stopped_in_place"}
_UP = {"running", "starting"}
BLOCK_VOLUME_TYPE = "sbs_volume"
LOCAL_VOLUME_TYPE = "l_ssd"


def server_tag(server_id: str) -> str:
    return f"{SERVER_TAG_PREFIX}{server_id}"


# --- Deadlines ------------------------------------------------------------------------------


class _DeadlineMixin:
    """scaleway_core.api.API._request, sent with a timeout.

    The SDK's version calls `requests.request(...)` with no timeout, so a gateway that accepts the
    connection and never answers hangs the caller (a Celery worker) forever. This builds the request
    exactly as the SDK does (headers, auth, repeated params, the x-total-count rewrite that paginated
    answers rely on, the masked debug log) and adds `timeout`. A contract test checks both send the
    same bytes.
    """

    timeout: tuple[float, float]

    def _request(self, method, path, params=None, headers=None, body=None) -> requests.Response:
        method = method.upper()
        extra_headers = {}
        if method in ("POST", "PUT", "PATCH"):
            extra_headers["Content-Type"] = "application/json; charset=utf-8"
        raw_body = body if isinstance(body, bytes) else json.dumps({} if body is None else body)
        request_params = []
        for key, value in (params or {}).items():
            if value is None:
                continue
            request_params.extend((key, item) for item in (value if isinstance(value, list) else [value]))
        headers = {
            "accept": "application/json",
            "user-agent": self.client.user_agent,
            **extra_headers,
            **(headers or {}),
        }
        if self.client.secret_key is not None:
            headers["x-auth-token"] = self.client.secret_key
        url = f"{self.client.api_url}{path}"
        api_log = APILogger(self._log, self.client._increment_request_count())
        api_log.log_request(
            method=method,
            url=url,
            params=request_params,
            headers=headers,
            body=raw_body.decode("utf-8", errors="replace") if isinstance(raw_body, bytes) else raw_body,
        )
        response = requests.request(
            method=method,
            url=url,
            params=request_params,
            headers=headers,
            data=raw_body,
            verify=not self.client.api_allow_insecure,
            timeout=self.timeout,
        )
        if response.headers.get("x-total-count"):
            payload = response.json()
            payload["total_count"] = response.headers.get("x-total-count")
            response._content = json.dumps(payload).encode("utf-8")
        api_log.log_response(response=response)
        return response


class _InstanceAPI(_DeadlineMixin, InstanceUtilsV1API):
    def __init__(self, client: Client, *, timeout: tuple[float, float]):
        super().__init__(client)
        self.timeout = timeout


class _BlockAPI(_DeadlineMixin, BlockV1Alpha1API):
    def __init__(self, client: Client, *, timeout: tuple[float, float]):
        super().__init__(client)
        self.timeout = timeout


# --- Errors ---------------------------------------------------------------------------------


def _error_body(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(body: dict) -> str:
    text = body.get("message") or body.get("help_message") or ""
    if body.get("type") == "out_of_stock" and not text:
        text = f"{body.get('resource') or 'the resource'} is out of stock"
    details = body.get("details")
    if body.get("type") == "quotas_exceeded" and isinstance(details, list):
        quotas = ", ".join(
            f"{item.get('resource')} ({item.get('current')}/{item.get('quota')})"
            for item in details
            if isinstance(item, dict)
        )
        text = f"{text or 'quota(s) exceeded'}: {quotas}" if quotas else text
    if not text and isinstance(body.get("fields"), dict):
        text = "; ".join(f"{name}: {', '.join(map(str, problems))}" for name, problems in body["fields"].items())
    return str(text)[:MAX_ERROR_TEXT]


def _retry_after(response) -> float | None:
    """The seconds a throttled answer's `Retry-After` asks to wait (Scaleway sends seconds), or None."""
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_S else MAX_RETRY_AFTER_S if seconds > 0 else None


def provider_error_from(exc: Exception, *, action: str, timeout_s: float) -> ProviderError:
    """The ProviderError that `exc`, raised while doing `action`, stands for."""
    if isinstance(exc, ScalewayException):
        status = exc.status_code or 0
        body = _error_body(exc.response)
        kind = str(body.get("type") or "")
        text = _error_text(body) or (exc.response.reason or "")
        message = f"Scaleway {action} failed (HTTP {status}{f' {kind}' if kind else ''}): {text}"
        lowered = text.lower()
        if kind == "out_of_stock" or "out of stock" in lowered:
            return ProviderError(message, code="PROVIDER_OUT_OF_STOCK")
        if kind == "quotas_exceeded" or "quota exceeded" in lowered:
            return ProviderError(message, code="PROVIDER_QUOTA_EXCEEDED")
        if isinstance(exc, ValidationError):
            return ProviderError(message)
        # A resource in a transient state (starting, stopping) accepts the action once it settles.
        transient = status == 429 or status >= 500 or kind == "transient_state"
        if not transient:
            return ProviderError(message, details=body.get("details") or body.get("fields"))
        return TransientProviderError(message, details=body.get("details") or body.get("fields"),
                                      retry_after=_retry_after(exc.response))
    if isinstance(exc, requests.exceptions.Timeout):
        return TransientProviderError(f"Scaleway {action} timed out after {timeout_s:g}s")
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # A gateway answering an HTML error page (502, 503) instead of the API.
        return TransientProviderError(f"Scaleway {action} got an answer that is not JSON (gateway error)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransientProviderError(f"Scaleway {action} could not reach the API: {type(exc).__name__}")
    return TransientProviderError(f"Scaleway {action} failed: {type(exc).__name__}")


# --- Configuration --------------------------------------------------------------------------


def _setting(name: str, problems: list[str], *, from_file: bool = False) -> str:
    """NAME, or the content of the file NAME_FILE names (Docker and Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE") if from_file else None
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            problems.append(f"{name}_FILE names a file that cannot be read ({exc.strerror})")
            return ""
    return os.environ.get(name, "").strip()


def _configuration_problems(access_key: str, secret_key: str, project_id: str, api_url: str) -> list[str]:
    # Messages name the variable, never its value: these are secrets.
    problems = []
    for value, name in ((access_key, ENV_ACCESS_KEY), (secret_key, ENV_SECRET_KEY), (project_id, ENV_PROJECT_ID)):
        if not value:
            problems.append(f"{name} is not set")
    if access_key and not is_access_key(access_key):
        problems.append(f"{ENV_ACCESS_KEY} is not a Scaleway access key (SCW followed by 17 letters or digits)")
    if secret_key and not is_secret_key(secret_key):
        problems.append(f"{ENV_SECRET_KEY} is not a Scaleway secret key (a UUID)")
    if project_id and not is_project_id(project_id):
        problems.append(f"{ENV_PROJECT_ID} is not a Scaleway project id (a UUID)")
    if not is_url(api_url):
        problems.append(f"{ENV_API_URL} is not a URL")
    return problems


# --- The adapter ----------------------------------------------------------------------------


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
    ):
        """Arguments left None come from the environment. Nothing here raises: an adapter that cannot
        work says so on check_available() and on every call."""
        problems: list[str] = []
        access_key = access_key or _setting(ENV_ACCESS_KEY, problems, from_file=True)
        secret_key = secret_key or _setting(ENV_SECRET_KEY, problems, from_file=True)
        self.project_id = project_id or _setting(ENV_PROJECT_ID, problems)
        self.api_url = (api_url or _setting(ENV_API_URL, problems) or DEFAULT_API_URL).rstrip("/")
        self.call_timeout_s = float(call_timeout_s)
        self.worker_ports = tuple(int(port) for port in worker_ports)
        self.security_group_name = security_group_name
        self.page_size = page_size
        self._security_groups: dict[str, str] = {}  # zone -> id, found or created once per process
        self._problems = problems + _configuration_problems(access_key, secret_key, self.project_id, self.api_url)
        self._instance_api: _InstanceAPI | None = None
        self._block_api: _BlockAPI | None = None
        if not self._problems:
            client = Client(
                access_key=access_key, secret_key=secret_key, default_project_id=self.project_id, api_url=self.api_url
            )
            timeout = (min(self.call_timeout_s, MAX_CONNECT_TIMEOUT_S), self.call_timeout_s)
            try:
                self._instance_api = _InstanceAPI(client, timeout=timeout)
                self._block_api = _BlockAPI(client, timeout=timeout)
            except ValueError:
                # The SDK's own validation messages quote the secret key: never pass them on.
                self._problems.append("the Scaleway SDK rejected the configuration")

    def __repr__(self) -> str:
        configured = "configured" if not self._problems else "not configured"
        return f"<ScalewayProvider {self.api_url} project={self.project_id or '-'} {configured}>"

    # --- plumbing ---

    def check_available(self) -> None:
        if self._problems:
            raise ProviderError(
                f"Scaleway is not configured: {'; '.join(self._problems)}. Set {ENV_ACCESS_KEY} and "
                f"{ENV_SECRET_KEY} (or {ENV_ACCESS_KEY}_FILE and {ENV_SECRET_KEY}_FILE) and {ENV_PROJECT_ID}.",
                code="MISSING_PROVIDER_CREDENTIALS",
            )

    @property
    def _instance(self) -> _InstanceAPI:
        self.check_available()
        return self._instance_api

    @property
    def _block(self) -> _BlockAPI:
        self.check_available()
        return self._block_api

    def _call(self, action: str, fn: Callable[..., T], /, *, missing_ok: bool = False, **kwargs) -> T | None:
        """Run one SDK call; None when the resource is gone and `missing_ok`."""
        try:
            return fn(**kwargs)
        except ScalewayException as exc:
            if missing_ok and exc.status_code == 404:
                return None
            raise provider_error_from(exc, action=action, timeout_s=self.call_timeout_s) from exc
        except requests.exceptions.RequestException as exc:
            raise provider_error_from(exc, action=action, timeout_s=self.call_timeout_s) from exc

    def _get(self, server_id: str, zone: str) -> Server | None:
        response = self._call("get server", self._instance.get_server, server_id=server_id, zone=zone, missing_ok=True)
        return response.server if response is not None else None

    def _servers_tagged(self, zone: str, tag: str) -> list[Server]:
        servers = self._call(
            "list servers",
            self._instance.list_servers_all,
            zone=zone,
            tags=[tag],
            project=self.project_id,
            per_page=self.page_size,
        )
        # The API filters on tags already; checking again costs nothing and guards a lax filter.
        return [server for server in servers if tag in (server.tags or [])]

    # --- servers ---

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        """Create the server for spec.instance_id, or return the one a previous attempt created."""
        tag = instance_tag(spec.instance_id)
        existing = self._servers_tagged(spec.zone, tag) if spec.may_exist else []
        if existing:
            server = min(existing, key=lambda server: server.creation_date.timestamp() if server.creation_date else 0)
            log.info("server %s already carries %s: reusing it", server.id, tag)
            if len(existing) > 1:
                log.warning("%d servers carry %s; the oldest one is used", len(existing), tag)
        else:
            server = self._create(spec, tags=list(dict.fromkeys([*spec.tags, INVENTIV_TAG, tag])))
        if spec.user_data and server.state in _NOT_BOOTED:
            # Cloud-init reads the user data at first boot; setting it again on a retry is harmless.
            self._call(
                "set user data",
                self._instance.set_server_user_data,
                server_id=server.id,
                zone=spec.zone,
                key=USER_DATA_KEY,
                content=spec.user_data.encode("utf-8"),
            )
        self._tag_volumes(server, zone=spec.zone, instance_id=spec.instance_id)
        return _server_info(server, zone=spec.zone)

    def _create(self, spec: ServerSpec, *, tags: list[str]) -> Server:
        params = spec.allocation_params
        if not params.get("image"):
            raise ProviderError(
                f"instance type {spec.commercial_type} has no image in its allocation parameters",
                code="MISSING_PARAMS",
            )
        volumes = None
        if params.get("root_volume_gb"):
            volumes = {
                "0": VolumeServerTemplate(
                    volume_type=params.get("root_volume_type", BLOCK_VOLUME_TYPE),
                    size=int(params["root_volume_gb"]) * GB,
                    name=f"{spec.name}-root",
                )
            }
        response = self._call(
            "create server",
            self._instance.create_server,
            zone=spec.zone,
            commercial_type=spec.commercial_type,
            name=spec.name,
            image=params["image"],
            tags=tags,
            dynamic_ip_required=True,
            boot_type=params.get("boot_type", "local"),
            volumes=volumes,
            project=self.project_id,
            security_group=self._worker_security_group(spec.zone),
        )
        return response.server

    def _tag_volumes(self, server: Server, *, zone: str, instance_id: str) -> None:
        tags = [INVENTIV_TAG, instance_tag(instance_id), server_tag(server.id)]
        for volume in (server.volumes or {}).values():
            if volume.volume_type == BLOCK_VOLUME_TYPE:
                self._call("tag volume", self._block.update_volume, volume_id=volume.id, zone=zone, tags=tags)
            elif volume.volume_type == LOCAL_VOLUME_TYPE:
                self._call("tag volume", self._instance.update_volume, volume_id=volume.id, zone=zone, tags=tags)

    def _worker_security_group(self, zone: str) -> str:
        """The zone's `inventiv-workers` group (inbound: the worker ports only), created the first time."""
        if zone in self._security_groups:
            return self._security_groups[zone]
        groups = self._call(
            "list security groups",
            self._instance.list_security_groups_all,
            zone=zone,
            name=self.security_group_name,
            project=self.project_id,
            per_page=self.page_size,
        )
        group = next((group for group in groups if group.name == self.security_group_name), None)
        if group is None:
            group = self._call(
                "create security group",
                self._instance.create_security_group,
                zone=zone,
                name=self.security_group_name,
                description="Inventiv GPU workers: inbound traffic only on the engine and agent ports",
                stateful=True,
                inbound_default_policy=SecurityGroupPolicy.DROP,
                outbound_default_policy=SecurityGroupPolicy.ACCEPT,
                project=self.project_id,
                tags=[INVENTIV_TAG],
            ).security_group
            rules_missing = True
        else:
            rules = self._call(
                "list security group rules",
                self._instance.list_security_group_rules_all,
                security_group_id=group.id,
                zone=zone,
                per_page=self.page_size,
            )
            # A crash between creating the group and setting its rules leaves a group that drops everything.
            rules_missing = not set(self.worker_ports) <= _open_inbound_tcp_ports(rules)
        if rules_missing:
            self._call(
                "set security group rules",
                self._instance.set_security_group_rules,
                security_group_id=group.id,
                zone=zone,
                rules=[
                    SetSecurityGroupRulesRequestRule(
                        action=SecurityGroupRuleAction.ACCEPT,
                        protocol=SecurityGroupRuleProtocol.TCP,
                        direction=SecurityGroupRuleDirection.INBOUND,
                        ip_range=ip_range,
                        position=position,
                        dest_port_from=port,
                        dest_port_to=port,
                        editable=True,
                    )
                    for position, (port, ip_range) in enumerate(
                        ((port, ip_range) for port in self.worker_ports for ip_range in ("0.0.0.0/0", "::/0")),
                        start=1,
                    )
                ],
            )
        self._security_groups[zone] = group.id
        return group.id

    def start_server(self, server_id: str, *, zone: str) -> None:
        """Power the server on; a server already running or starting is fine. Scaleway answers a power-on
        with a task, not the server: its address comes with `get_server`."""
        server = self._get(server_id, zone)
        if server is None:
            raise ProviderError(
                f"server {server_id} no longer exists in {zone}", code="PROVIDER_DELETED"
            )
        if server.state in _UP:
            return
        if server.state not in _NOT_BOOTED:
            raise provider_error(
                f"server {server_id} is {server.state}: start it again once that settles",
                permanent=server.state == "locked",
            )
        try:
            self._call("power on", self._instance.server_action, server_id=server_id, zone=zone, action="poweron")
        except ProviderError as error:
            # Someone (a previous attempt) may have started it between our read and our action.
            if error.code is None:
                server = self._get(server_id, zone)
                if server is not None and server.state in _UP:
                    return
            raise

    def get_server(self, server_id: str, *, zone: str) -> ServerInfo | None:
        server = self._get(server_id, zone)
        return _server_info(server, zone=zone) if server is not None else None

    def list_servers(self, *, zone: str, tag: str = INVENTIV_TAG) -> list[ServerInfo]:
        return [_server_info(server, zone=zone) for server in self._servers_tagged(zone, tag)]

    def terminate_server(self, server_id: str, *, zone: str) -> None:
        """Ask Scaleway to delete the server: `terminate` when it runs, a plain delete when it is stopped,
        a power-off first when neither is allowed yet (call again: the server is gone once get_server says so).

        Terminate deletes local volumes and detaches block volumes (delete_volumes removes those).
        A server in a transient state raises a transient error: call again once it settles.
        """
        server = self._get(server_id, zone)
        if server is None:
            return
        allowed = {str(action) for action in (server.allowed_actions or [])}
        if "terminate" in allowed:
            self._call(
                "terminate server",
                self._instance.server_action,
                server_id=server_id,
                zone=zone,
                action="terminate",
                missing_ok=True,
            )
        elif server.state == "stopped":
            self._call("delete server", self._instance.delete_server, server_id=server_id, zone=zone, missing_ok=True)
        elif "poweroff" in allowed:
            self._call(
                "power off", self._instance.server_action, server_id=server_id, zone=zone, action="poweroff",
                missing_ok=True,
            )
        else:
            raise TransientProviderError(f"server {server_id} is {server.state}: terminate it again once that settles")

    def delete_volumes(self, server_id: str, *, zone: str) -> None:
        """Delete the detached volumes tagged for `server_id`; volumes still attached raise a transient error."""
        tag = server_tag(server_id)
        attached = []
        block_volumes = self._call(
            "list volumes", self._block.list_volumes_all, zone=zone, tags=[tag], page_size=self.page_size
        )
        for volume in block_volumes:
            if tag not in (volume.tags or []):
                continue  # the Block API matches any one of the tags asked for
            if volume.references or str(volume.status) == "in_use":
                attached.append(volume.id)
                continue
            self._call("delete volume", self._block.delete_volume, volume_id=volume.id, zone=zone, missing_ok=True)
        local_volumes = self._call(
            "list volumes",
            self._instance.list_volumes_all,
            zone=zone,
            tags=[tag],
            project=self.project_id,
            per_page=self.page_size,
        )
        for volume in local_volumes:
            if volume.server is not None:
                attached.append(volume.id)
                continue
            self._call("delete volume", self._instance.delete_volume, volume_id=volume.id, zone=zone, missing_ok=True)
        if attached:
            raise TransientProviderError(
                f"volumes {', '.join(attached)} of server {server_id} are still attached: delete them again "
                "once the server is gone"
            )

    # --- catalog ---

    def fetch_catalog(self, *, zones: list[str]) -> list[TypeOffer]:
        """GPU types (gpu >= 1) sold in `zones`, with hourly prices and per-zone availability."""
        offers: dict[str, TypeOffer] = {}
        for zone in zones:
            types = self._all_pages("list server types", self._instance.list_servers_types, zone=zone)
            availability = self._all_pages(
                "get server types availability", self._instance.get_server_types_availability, zone=zone
            )
            for code, server_type in sorted(types.items()):
                if (server_type.gpu or 0) < 1:
                    continue
                offer = offers.get(code) or _type_offer(code, server_type)
                offers[code] = offer
                if code in availability:
                    offer.availability[zone] = str(availability[code].availability)
        return sorted(offers.values(), key=lambda offer: offer.code)

    def _all_pages(self, action: str, fn: Callable[..., Any], *, zone: str) -> dict[str, Any]:
        """Merge the `servers` maps of every page (these endpoints have no `_all` helper in the SDK)."""
        merged: dict[str, Any] = {}
        for page in range(1, MAX_PAGES + 1):
            response = self._call(action, fn, zone=zone, page=page, per_page=self.page_size)
            merged.update(response.servers)
            if not response.servers or len(merged) >= int(response.total_count or 0):
                break
        return merged


def _open_inbound_tcp_ports(rules) -> set[int]:
    ports: set[int] = set()
    for rule in rules:
        if (str(rule.direction), str(rule.action), str(rule.protocol)) != ("inbound", "accept", "tcp"):
            continue
        if rule.dest_port_from:
            ports.update(range(rule.dest_port_from, (rule.dest_port_to or rule.dest_port_from) + 1))
    return ports


def _server_info(server: Server, *, zone: str) -> ServerInfo:
    state = _STATES.get(str(server.state))
    if state is None:
        log.warning("server %s is in state %r, unknown to Inventiv: treated as locked", server.id, server.state)
        state = ServerState.LOCKED
    return ServerInfo(
        server_id=server.id,
        zone=str(server.zone or zone),
        state=state,
        name=server.name or "",
        tags=list(server.tags or []),
        public_ip=_public_ip(server),
        created_at=server.creation_date,
        commercial_type=server.commercial_type or "",
        metadata={
            "state_detail": server.state_detail or "",
            "volume_ids": [volume.id for volume in (server.volumes or {}).values()],
        },
    )


def _public_ip(server: Server) -> str | None:
    if server.public_ip is not None and server.public_ip.address:
        return server.public_ip.address
    addresses = [ip for ip in (server.public_ips or []) if ip.address]
    # Prefer IPv4: the router reaches workers over it when both exist.
    addresses.sort(key=lambda ip: str(ip.family) != "inet")
    return addresses[0].address if addresses else None


def _type_offer(code: str, server_type) -> TypeOffer:
    gpu_info = server_type.gpu_info
    return TypeOffer(
        code=code,
        gpu_count=int(server_type.gpu),
        vram_per_gpu_gb=round((gpu_info.gpu_memory or 0) / GIB) if gpu_info else 0,
        vcpu=int(server_type.ncpus),
        ram_gb=round(server_type.ram / GIB),
        hourly_price=float(server_type.hourly_price),
        gpu_model=(gpu_info.gpu_name or "") if gpu_info else "",
        availability={},
    )
