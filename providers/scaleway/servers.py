"""Servers: create (idempotent), power on, read, list, terminate.

Idempotency: every server carries `inventiv-instance=<id>` in its tags, and create_server returns the server
already carrying that tag instead of creating a second one.
"""

from __future__ import annotations

import logging

from scaleway.instance.v1 import Server

from providers.base import (
    INVENTIV_TAG,
    ProviderError,
    ServerInfo,
    ServerSpec,
    ServerState,
    TransientProviderError,
    instance_tag,
    provider_error,
)
from providers.scaleway.client import ScalewayClient
from providers.scaleway.security_groups import WorkerSecurityGroups
from providers.scaleway.volumes import root_volume, tag_volumes

log = logging.getLogger(__name__)

USER_DATA_KEY = "cloud-init"
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


def create_server(client: ScalewayClient, spec: ServerSpec, *, security_groups: WorkerSecurityGroups) -> ServerInfo:
    """Create the server for spec.instance_id, or return the one a previous attempt created."""
    tag = instance_tag(spec.instance_id)
    existing = _servers_tagged(client, spec.zone, tag) if spec.may_exist else []
    if existing:
        server = min(existing, key=lambda server: server.creation_date.timestamp() if server.creation_date else 0)
        log.info("server %s already carries %s: reusing it", server.id, tag)
        if len(existing) > 1:
            log.warning("%d servers carry %s; the oldest one is used", len(existing), tag)
    else:
        tags = list(dict.fromkeys([*spec.tags, INVENTIV_TAG, tag]))
        server = _create(client, spec, tags=tags, security_groups=security_groups)
    if spec.user_data and server.state in _NOT_BOOTED:
        # Cloud-init reads the user data at first boot; setting it again on a retry is harmless.
        client.call(
            "set user data",
            client.instance.set_server_user_data,
            server_id=server.id,
            zone=spec.zone,
            key=USER_DATA_KEY,
            content=spec.user_data.encode("utf-8"),
        )
    tag_volumes(client, server, zone=spec.zone, instance_id=spec.instance_id)
    return _server_info(server, zone=spec.zone)


def _create(
    client: ScalewayClient, spec: ServerSpec, *, tags: list[str], security_groups: WorkerSecurityGroups
) -> Server:
    params = spec.allocation_params
    if not params.get("image"):
        raise ProviderError(
            f"instance type {spec.commercial_type} has no image in its allocation parameters",
            code="MISSING_PARAMS",
        )
    response = client.call(
        "create server",
        client.instance.create_server,
        zone=spec.zone,
        commercial_type=spec.commercial_type,
        name=spec.name,
        image=params["image"],
        tags=tags,
        dynamic_ip_required=True,
        boot_type=params.get("boot_type", "local"),
        volumes=root_volume(spec),
        project=client.project_id,
        security_group=security_groups.id_in(spec.zone),
    )
    return response.server


def start_server(client: ScalewayClient, server_id: str, *, zone: str) -> None:
    """Power the server on; a server already running or starting is fine. Scaleway answers a power-on
    with a task, not the server: its address comes with `get_server`."""
    server = _get(client, server_id, zone)
    if server is None:
        raise ProviderError(f"server {server_id} no longer exists in {zone}", code="PROVIDER_DELETED")
    if server.state in _UP:
        return
    if server.state not in _NOT_BOOTED:
        raise provider_error(
            f"server {server_id} is {server.state}: start it again once that settles",
            permanent=server.state == "locked",
        )
    try:
        client.call("power on", client.instance.server_action, server_id=server_id, zone=zone, action="poweron")
    except ProviderError as error:
        # Someone (a previous attempt) may have started it between our read and our action.
        if error.code is None:
            server = _get(client, server_id, zone)
            if server is not None and server.state in _UP:
                return
        raise


def get_server(client: ScalewayClient, server_id: str, *, zone: str) -> ServerInfo | None:
    server = _get(client, server_id, zone)
    return _server_info(server, zone=zone) if server is not None else None


def list_servers(client: ScalewayClient, *, zone: str, tag: str) -> list[ServerInfo]:
    return [_server_info(server, zone=zone) for server in _servers_tagged(client, zone, tag)]


def terminate_server(client: ScalewayClient, server_id: str, *, zone: str) -> None:
    """Ask Scaleway to delete the server: `terminate` when it runs, a plain delete when it is stopped,
    a power-off first when neither is allowed yet (call again: the server is gone once get_server says so).

    Terminate deletes local volumes and detaches block volumes (delete_volumes removes those).
    A server in a transient state raises a transient error: call again once it settles.
    """
    server = _get(client, server_id, zone)
    if server is None:
        return
    allowed = {str(action) for action in (server.allowed_actions or [])}
    if "terminate" in allowed:
        client.call(
            "terminate server",
            client.instance.server_action,
            server_id=server_id,
            zone=zone,
            action="terminate",
            missing_ok=True,
        )
    elif server.state == "stopped":
        client.call("delete server", client.instance.delete_server, server_id=server_id, zone=zone, missing_ok=True)
    elif "poweroff" in allowed:
        client.call(
            "power off", client.instance.server_action, server_id=server_id, zone=zone, action="poweroff",
            missing_ok=True,
        )
    else:
        raise TransientProviderError(f"server {server_id} is {server.state}: terminate it again once that settles")


def _get(client: ScalewayClient, server_id: str, zone: str) -> Server | None:
    response = client.call("get server", client.instance.get_server, server_id=server_id, zone=zone, missing_ok=True)
    return response.server if response is not None else None


def _servers_tagged(client: ScalewayClient, zone: str, tag: str) -> list[Server]:
    servers = client.all_pages(
        "list servers", client.instance.list_servers, "servers", zone=zone, tags=[tag], project=client.project_id,
    )
    # The API filters on tags already; checking again costs nothing and guards a lax filter.
    return [server for server in servers if tag in (server.tags or [])]


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
