"""The GPU types Scaleway sells, with hourly prices and per-zone availability, as TypeOffers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.base import TypeOffer
from providers.scaleway.client import ScalewayClient

# A catalog never has this many pages; the bound stops a misbehaving endpoint from looping us forever.
MAX_PAGES = 50
GIB = 2**30  # RAM and GPU memory are reported in binary gigabytes


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
    )
