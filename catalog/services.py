"""Catalog logic: compatibility, zone offers, activation and moving rows between providers.

Runtime settings have their own module, `catalog/runtime_settings.py`."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet

from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, Zone

# --- Compatibility --------------------------------------------------------------------------


def incompatibility_reason(model: LlmModel, instance_type: InstanceType) -> str | None:
    """Why `model` cannot run on `instance_type`, or None when it can.

    A model fits when GPUs x VRAM per GPU covers its VRAM need. Simulated models (mock_only) run only on
    Mock machines; real models run on Mock machines only when an operator allowed the simulator for them.
    """
    if instance_type.provider.is_mock:
        if not (model.mock_only or model.allow_simulator):
            return f"{model.code} is a real model: Mock machines serve it only when allow_simulator is set"
    elif model.mock_only:
        return f"{model.code} is simulated and runs only on Mock machines"
    if instance_type.total_vram_gb < model.vram_required_gb:
        return (
            f"{model.code} needs {model.vram_required_gb} GB of VRAM; {instance_type.code} has "
            f"{instance_type.gpu_count} x {instance_type.vram_per_gpu_gb} GB"
        )
    return None


def is_compatible(model: LlmModel, instance_type: InstanceType) -> bool:
    return incompatibility_reason(model, instance_type) is None


def compatible_models(instance_type: InstanceType) -> QuerySet[LlmModel]:
    models = LlmModel.objects.filter(vram_required_gb__lte=instance_type.total_vram_gb)
    if instance_type.provider.is_mock:
        return models.filter(mock_only=True) | models.filter(allow_simulator=True)
    return models.filter(mock_only=False)


def compatible_instance_types(model: LlmModel) -> QuerySet[InstanceType]:
    types = InstanceType.objects.select_related("provider").alias(
        total_vram=F("gpu_count") * F("vram_per_gpu_gb")
    ).filter(total_vram__gte=model.vram_required_gb)
    if model.mock_only:
        return types.filter(provider__adapter="mock")
    if not model.allow_simulator:
        return types.exclude(provider__adapter="mock")
    return types


# --- Zone offers ----------------------------------------------------------------------------


@transaction.atomic
def set_instance_type_zones(instance_type: InstanceType, *, zones: Iterable[Zone]) -> list[Zone]:
    """Replace the set of zones `instance_type` is offered in.

    Raises ValidationError (field `zones`) when a zone belongs to another provider; nothing changes then.
    Offers kept keep their availability; new ones start `available`.
    """
    zones = list({zone.pk: zone for zone in zones}.values())
    foreign = [zone.code for zone in zones if zone.region.provider_id != instance_type.provider_id]
    if foreign:
        raise ValidationError(
            {
                "zones": (
                    f"{', '.join(sorted(foreign))} belong to another provider than "
                    f"{instance_type.provider.code}; an instance type is offered only in its provider's zones"
                )
            }
        )
    wanted = {zone.pk for zone in zones}
    InstanceTypeZone.objects.filter(instance_type=instance_type).exclude(zone_id__in=wanted).delete()
    existing = set(InstanceTypeZone.objects.filter(instance_type=instance_type).values_list("zone_id", flat=True))
    InstanceTypeZone.objects.bulk_create(
        [InstanceTypeZone(instance_type=instance_type, zone_id=pk) for pk in wanted - existing]
    )
    return sorted(zones, key=lambda zone: zone.code)


def is_offered(instance_type: InstanceType, zone: Zone) -> bool:
    return InstanceTypeZone.objects.filter(instance_type=instance_type, zone=zone).exists()


# --- Activation -----------------------------------------------------------------------------


def set_active(row: Provider | Region | Zone | InstanceType | LlmModel, *, active: bool) -> bool:
    """Mark a catalog row active or inactive (inactive rows are kept but no longer offered).

    Returns True when the flag changed, False when the row already had it (a second click, another tab).
    """
    changed = type(row).objects.filter(pk=row.pk).exclude(active=active).update(active=active)
    row.active = active
    return changed == 1


# --- Moving rows between providers ----------------------------------------------------------
# An offer pairs an instance type and a zone of the same provider. These checks refuse an edit that
# would break that rule for offers that already exist, instead of leaving offers no provider can honour.


def offer_rejection_reason(*, instance_type: InstanceType, zone: Zone) -> str | None:
    """Why `instance_type` cannot be offered in `zone`, or None when it can."""
    if zone.region.provider_id != instance_type.provider_id:
        return (
            f"{zone.code} belongs to {zone.region.provider.code}, not {instance_type.provider.code}; "
            "an instance type is offered only in its provider's zones"
        )
    return None


def validate_instance_type_provider(instance_type: InstanceType, *, provider: Provider) -> None:
    """Raise ValidationError (field `provider`) when `instance_type` is offered in zones of another provider."""
    if instance_type.pk is None or provider.pk == instance_type.provider_id:
        return
    offers = instance_type.zone_offers.exclude(zone__region__provider=provider)
    zones = ", ".join(sorted(offers.values_list("zone__code", flat=True)))
    if zones:
        reason = f"{instance_type.code} is offered in {zones}; remove those zones before moving it to {provider.code}"
        raise ValidationError({"provider": reason})


def validate_region_provider(region: Region, *, provider: Provider) -> None:
    """Raise ValidationError (field `provider`) when zones of `region` offer instance types of its provider."""
    if region.pk is None or provider.pk == region.provider_id:
        return
    if InstanceTypeZone.objects.filter(zone__region=region).exists():
        reason = f"zones of {region.code} offer {region.provider.code} instance types; remove those offers first"
        raise ValidationError({"provider": reason})


def validate_zone_region(zone: Zone, *, region: Region) -> None:
    """Raise ValidationError (field `region`) when moving `zone` to `region` would change the provider of its offers."""
    if zone.pk is None or region.provider_id == zone.region.provider_id:
        return
    if zone.type_offers.exists():
        reason = (
            f"{zone.code} offers {zone.region.provider.code} instance types; "
            f"remove those offers before moving it to {region.provider.code}"
        )
        raise ValidationError({"region": reason})
