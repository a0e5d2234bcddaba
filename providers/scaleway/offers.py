"""The GPU types Scaleway sells, with hourly prices and per-zone availability, as TypeOffers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.base import TypeOffer
from providers.scaleway.client import ScalewayClient

# A catalog never has this many pages; the bound stops a misbehaving endpoint from looping us forever.
MAX_PAGES = 50
GIB = 2**30  # RAM and GPU memory are reported in binary gigabytes
GB = 10**9  # volume sizes are decimal gigabytes
# Block Storage volumes hold 5 GB to 10 TB (Scaleway's Block Storage documentation); the Instance catalog
# only says whether a type can use them.
BLOCK_VOLUME_GB = [5, 10_000]


def fetch_catalog(client: ScalewayClient, *, zones: list[str]) -> list[TypeOffer]:
    """GPU types (gpu >= 1) sold in `zones`, with hourly prices and per-zone availability."""
    offers: dict[str, TypeOffer] = {}
    for zone in zones:
        types = _all_pages(client, "list server types", client.instance.list_servers_types, zone=zone)
        availability = _all_pages(
            client, "get server types availability", client.instance.get_server_types_availability, zone=zone
        )
        for code, server_type in sorted(types.items()):
            if (server_type.gpu or 0) < 1:
                continue
            offer = offers.get(code) or _type_offer(code, server_type)
            offers[code] = offer
            if code in availability:
                offer.availability[zone] = str(availability[code].availability)
    return sorted(offers.values(), key=lambda offer: offer.code)


def _all_pages(client: ScalewayClient, action: str, fn: Callable[..., Any], *, zone: str) -> dict[str, Any]:
    """Merge the `servers` maps of every page (these endpoints have no `_all` helper in the SDK)."""
    merged: dict[str, Any] = {}
    for page in range(1, MAX_PAGES + 1):
        response = client.call(action, fn, zone=zone, page=page, per_page=client.page_size)
        merged.update(response.servers)
        if not response.servers or len(merged) >= int(response.total_count or 0):
            break
    return merged


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
        root_volumes=_root_volumes(server_type),
    )


def _root_volumes(server_type) -> dict[str, list[int]]:
    """What the catalog says of volumes: block storage when the type can use it, local volumes (`l_ssd`)
    within both their per-volume bounds and the type's total (`volumes_constraint`); GPU types allow 0."""
    volumes = {}
    capabilities = server_type.capabilities
    if capabilities is not None and capabilities.block_storage:
        volumes["sbs_volume"] = list(BLOCK_VOLUME_GB)
    total = server_type.volumes_constraint
    each = server_type.per_volume_constraint.l_ssd if server_type.per_volume_constraint else None
    if total is not None and each is not None and total.max_size and each.max_size:
        volumes["l_ssd"] = [max(1, (each.min_size or 0) // GB), min(each.max_size, total.max_size) // GB]
    return volumes
