"""Refreshing a provider's part of the catalog from what the provider sells right now.

The provider is asked first (never inside a transaction), then the answer is written in one transaction:
prices, specs and root volume constraints of known types, new GPU types (inactive until an operator
activates them and sets their allocation parameters), and the availability of each type in each of the
provider's active zones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from catalog.gpus import compute_capability
from catalog.models import InstanceType, InstanceTypeZone, Provider, Zone
from monitoring.services import Component, Outcome, record_action
from providers.base import CloudProvider, ProviderError, TypeOffer
from providers.registry import get_provider

PRICE_STEP = Decimal("0.0001")  # cost_per_hour keeps four decimals
KNOWN_AVAILABILITY = {
    InstanceTypeZone.Availability.AVAILABLE,
    InstanceTypeZone.Availability.SCARCE,
    InstanceTypeZone.Availability.SHORTAGE,
}


@dataclass(frozen=True)
class SyncResult:
    provider: str
    offers: int = 0  # GPU types the provider sells in the zones asked about
    updated: int = 0  # known types whose price or specs changed
    created: int = 0  # new types, created inactive
    skipped: int = 0  # offers that cannot be stored (no GPU memory reported)
    zone_offers_created: int = 0
    zone_offers_updated: int = 0  # availability changed
    zone_offers_withdrawn: int = 0  # no longer sold in that zone: marked shortage

    def summary(self) -> str:
        return (
            f"{self.provider}: {self.offers} GPU types fetched, {self.updated} updated, "
            f"{self.created} created (inactive), {self.skipped} skipped; zone offers: "
            f"{self.zone_offers_created} created, {self.zone_offers_updated} changed, "
            f"{self.zone_offers_withdrawn} withdrawn"
        )


def sync_provider_catalog(provider: Provider, *, adapter: CloudProvider | None = None) -> SyncResult:
    """Fetch `provider`'s GPU catalog for its active zones and store it. A ProviderError propagates."""
    if provider.is_static:
        return SyncResult(provider=provider.code)  # nothing is for sale: its rows come from registrations
    zones = {
        zone.code: zone
        for zone in Zone.objects.filter(region__provider=provider, active=True, region__active=True)
    }
    adapter = adapter or get_provider(provider.adapter)
    try:
        offers = adapter.fetch_catalog(zones=sorted(zones))
    except ProviderError as error:
        record_action(
            "CATALOG_SYNC", component=Component.ORCHESTRATOR, status=Outcome.FAILED,
            error_code=error.code or "PROVIDER_ERROR", error_message=error.message, metadata={"provider": provider.code},
        )
        raise
    result = _store_offers(provider, offers, zones=zones)
    record_action(
        "CATALOG_SYNC", component=Component.ORCHESTRATOR,
        metadata={"provider": provider.code, "summary": result.summary()},
    )
    return result


@transaction.atomic
def _store_offers(provider: Provider, offers: list[TypeOffer], *, zones: dict[str, Zone]) -> SyncResult:
    counts = Counter(offers=len(offers))
    types = {t.code: t for t in InstanceType.objects.select_for_update().filter(provider=provider)}
    sold_in: dict[int, set[int]] = {}  # instance type id -> zone ids where it is sold
    for offer in offers:
        if offer.gpu_count < 1 or offer.vram_per_gpu_gb < 1 or offer.vcpu < 1 or offer.ram_gb < 1:
            counts["skipped"] += 1
            continue
        instance_type = types.get(offer.code)
        if instance_type is None:
            instance_type = _create_type(provider, offer)
            counts["created"] += 1
        elif _update_type(instance_type, offer):
            counts["updated"] += 1
        sold_in[instance_type.pk] = set()
        for zone_code, availability in offer.availability.items():
            zone = zones.get(zone_code)
            if zone is None:
                continue  # a zone Inventiv does not use, or one an operator switched off
            sold_in[instance_type.pk].add(zone.pk)
            outcome = _set_availability(instance_type, zone, _availability(availability))
            if outcome:
                counts[f"zone_offers_{outcome}"] += 1
    # Offers the provider no longer sells in a zone it was asked about: nothing can be rented there.
    stored = InstanceTypeZone.objects.filter(instance_type__provider=provider, zone__in=zones.values()).exclude(
        availability=InstanceTypeZone.Availability.SHORTAGE
    )
    for zone_offer in stored:
        if zone_offer.zone_id not in sold_in.get(zone_offer.instance_type_id, set()):
            zone_offer.availability = InstanceTypeZone.Availability.SHORTAGE
            zone_offer.save(update_fields=["availability", "updated_at"])
            counts["zone_offers_withdrawn"] += 1
    return SyncResult(provider=provider.code, **counts)


def _price(offer: TypeOffer) -> Decimal:
    return Decimal(str(offer.hourly_price)).quantize(PRICE_STEP, rounding=ROUND_HALF_UP)


def _create_type(provider: Provider, offer: TypeOffer) -> InstanceType:
    return InstanceType.objects.create(
        provider=provider,
        code=offer.code,
        name=f"{offer.gpu_count} x {offer.gpu_model or 'GPU'} {offer.vram_per_gpu_gb} GB",
        gpu_model=offer.gpu_model,
        compute_capability=compute_capability(offer.gpu_model),
        gpu_count=offer.gpu_count,
        vram_per_gpu_gb=offer.vram_per_gpu_gb,
        vcpu=offer.vcpu,
        ram_gb=offer.ram_gb,
        cost_per_hour=_price(offer),
        root_volumes=offer.root_volumes,
        # New types wait for an operator: they need allocation parameters (image, volumes) to be usable.
        active=False,
    )


def _update_type(instance_type: InstanceType, offer: TypeOffer) -> bool:
    """Copy the provider's price and specs; True when something changed."""
    wanted = {
        "cost_per_hour": _price(offer),
        "gpu_count": offer.gpu_count,
        "vram_per_gpu_gb": offer.vram_per_gpu_gb,
        "vcpu": offer.vcpu,
        "ram_gb": offer.ram_gb,
    }
    if offer.root_volumes:  # what the provider's API enforces: its word wins
        wanted["root_volumes"] = offer.root_volumes
    if instance_type.compute_capability is None:  # an operator's own figure is never overwritten
        wanted["compute_capability"] = compute_capability(offer.gpu_model or instance_type.gpu_model)
    changed = [name for name, value in wanted.items() if getattr(instance_type, name) != value]
    for name in changed:
        setattr(instance_type, name, wanted[name])
    if changed:
        instance_type.save(update_fields=changed)
    return bool(changed)


def _availability(value: str) -> str:
    return value if value in KNOWN_AVAILABILITY else InstanceTypeZone.Availability.UNKNOWN


def _set_availability(instance_type: InstanceType, zone: Zone, availability: str) -> str | None:
    """'created', 'updated' or None (unchanged)."""
    offer, created = InstanceTypeZone.objects.get_or_create(
        instance_type=instance_type, zone=zone, defaults={"availability": availability}
    )
    if created:
        return "created"
    if offer.availability != availability:
        offer.availability = availability
        offer.save(update_fields=["availability", "updated_at"])
        return "updated"
    return None
