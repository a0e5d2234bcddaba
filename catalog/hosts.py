"""The catalog rows of hosts the operator runs (README, "A GPU machine you run yourself").

Such hosts belong to the `static` provider, made on the first registration with its one region
(`self-hosted`); each zone label an operator gives becomes a zone of it, and each GPU type a static instance
type: one the operator made earlier under that code, or a copy of a catalog type of that code (an L4-1-24G's
GPUs, VRAM and compute capability, so the launch planner can advise). Nothing here is rented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models
from django.utils.text import slugify

from catalog.models import InstanceType, InstanceTypeZone, Provider, Region, Zone

STATIC_PROVIDER = "static"
STATIC_REGION = "self-hosted"
# The fields a copied type takes from the catalog type it is named after.
COPIED_FIELDS = ("name", "gpu_model", "gpu_count", "vram_per_gpu_gb", "vcpu", "ram_gb", "bandwidth_mbps",
                 "compute_capability", "engine_image")


class PlacementInvalid(Exception):
    """A field of the registration names nothing usable: {field: reason}."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in fields.items()))
        self.fields = fields


@dataclass
class Placement:
    provider: Provider
    zone: Zone
    instance_type: InstanceType
    created: list[models.Model] = field(default_factory=list)  # catalog rows this registration made


def zone_code(label: str) -> str:
    return slugify(label)[:50]


def check_placement(*, type_code: str, zone_label: str) -> dict[str, str]:
    """Why the GPU type or the zone label cannot be used, by field (empty when both can)."""
    errors = {}
    if not zone_code(zone_label):
        errors["zone"] = "give a zone label made of letters, digits or dashes"
    if not _static_types().filter(code=type_code).exists() and not _catalog_types().filter(code=type_code).exists():
        errors["instance_type"] = f"no instance type {type_code!r} in the catalog"
    return errors


def static_placement(*, type_code: str, zone_label: str, price) -> Placement:
    """The static provider, zone and instance type of a host, made where missing (call in a transaction)."""
    errors = check_placement(type_code=type_code, zone_label=zone_label)
    if errors:
        raise PlacementInvalid(errors)
    created: list[models.Model] = []
    provider, made = Provider.objects.get_or_create(
        code=STATIC_PROVIDER,
        defaults={"name": "Your own machines", "adapter": Provider.Adapter.STATIC,
                  "description": "GPU machines the operator runs and registers; nothing is rented."})
    created += [provider] if made else []
    region, made = Region.objects.get_or_create(provider=provider, code=STATIC_REGION,
                                                defaults={"name": "Self-hosted"})
    created += [region] if made else []
    zone, made = Zone.objects.get_or_create(region=region, code=zone_code(zone_label),
                                            defaults={"name": zone_label.strip()[:100]})
    created += [zone] if made else []
    instance_type = _static_types().filter(code=type_code).first()
    if instance_type is None:
        source = _catalog_types().filter(code=type_code).order_by("-active", "provider__code").first()
        # get_or_create: two registrations naming a new type at once make one row between them.
        instance_type, made = InstanceType.objects.get_or_create(
            provider=provider, code=type_code,
            defaults={"cost_per_hour": price, **{name: getattr(source, name) for name in COPIED_FIELDS}})
        created += [instance_type] if made else []
    offer, made = InstanceTypeZone.objects.get_or_create(instance_type=instance_type, zone=zone)
    created += [offer] if made else []
    return Placement(provider=provider, zone=zone, instance_type=instance_type, created=created)


def _static_types():
    return InstanceType.objects.filter(provider__adapter=Provider.Adapter.STATIC)


def _catalog_types():
    return InstanceType.objects.exclude(provider__adapter=Provider.Adapter.STATIC)
