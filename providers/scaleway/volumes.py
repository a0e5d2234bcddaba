"""A server's volumes. GPU types boot from Block Storage, whose volumes survive the server. At creation each
volume is tagged `inventiv-server=<server id>`, so delete_volumes can still find them once the server is gone."""

from __future__ import annotations

from scaleway.instance.v1 import Server, VolumeServerTemplate

from providers.base import INVENTIV_TAG, ServerSpec, TransientProviderError, instance_tag
from providers.scaleway.client import ScalewayClient

SERVER_TAG_PREFIX = "inventiv-server="
BLOCK_VOLUME_TYPE = "sbs_volume"
LOCAL_VOLUME_TYPE = "l_ssd"
GB = 10**9  # volume sizes are decimal gigabytes


def server_tag(server_id: str) -> str:
    return f"{SERVER_TAG_PREFIX}{server_id}"


def root_volume(spec: ServerSpec) -> dict[str, VolumeServerTemplate] | None:
    """The `volumes` argument of a server creation: the root volume of the launch plan (type and size), or
    None for the image's default."""
    if not spec.root_volume_gb:
        return None
    return {
        "0": VolumeServerTemplate(
            volume_type=spec.root_volume_type or BLOCK_VOLUME_TYPE,
            size=int(spec.root_volume_gb) * GB,
            name=f"{spec.name}-root",
        )
    }


def tag_volumes(client: ScalewayClient, server: Server, *, zone: str, instance_id: str) -> None:
    tags = [INVENTIV_TAG, instance_tag(instance_id), server_tag(server.id)]
    for volume in (server.volumes or {}).values():
        if volume.volume_type == BLOCK_VOLUME_TYPE:
            client.call("tag volume", client.block.update_volume, volume_id=volume.id, zone=zone, tags=tags)
        elif volume.volume_type == LOCAL_VOLUME_TYPE:
            client.call("tag volume", client.instance.update_volume, volume_id=volume.id, zone=zone, tags=tags)


def delete_volumes(client: ScalewayClient, server_id: str, *, zone: str) -> None:
    """Delete the detached volumes tagged for `server_id`; volumes still attached raise a transient error."""
    tag = server_tag(server_id)
    attached = []
    block_volumes = client.all_pages(
        "list volumes", client.block.list_volumes, "volumes", size_param="page_size", zone=zone, tags=[tag],
        include_deleted=False,
    )
    for volume in block_volumes:
        if tag not in (volume.tags or []):
            continue  # the Block API matches any one of the tags asked for
        if volume.references or str(volume.status) == "in_use":
            attached.append(volume.id)
            continue
        client.call("delete volume", client.block.delete_volume, volume_id=volume.id, zone=zone, missing_ok=True)
    local_volumes = client.all_pages(
        "list volumes", client.instance.list_volumes, "volumes", zone=zone, tags=[tag], project=client.project_id,
    )
    for volume in local_volumes:
        if volume.server is not None:
            attached.append(volume.id)
            continue
        client.call("delete volume", client.instance.delete_volume, volume_id=volume.id, zone=zone, missing_ok=True)
    if attached:
        raise TransientProviderError(
            f"volumes {', '.join(attached)} of server {server_id} are still attached: delete them again "
            "once the server is gone"
        )
