"""Catalog logic: launch plans and compatibility, zone offers, activation and moving rows between providers.

Runtime settings have their own module, `catalog/runtime_settings.py`."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from catalog.launch_plan import LaunchPlan, ModelSpec, Refusal, TypeSpec, plan_launch
from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, Zone

# --- Launch plans and compatibility -------------------------------------------------------
# A model is compatible with an instance type when the launch planner finds a plan (README, "Launch plans").


def model_spec(model: LlmModel) -> ModelSpec:
    return ModelSpec(
        code=model.code, task=model.task, weights_gb=float(model.weights_gb), layers=model.layers,
        attention_heads=model.attention_heads, kv_heads=model.kv_heads, head_size=model.head_size,
        max_context=model.context_length, vram_required_gb=model.vram_required_gb, gated=model.gated,
        mock_only=model.mock_only, allow_simulator=model.allow_simulator,
    )


def type_spec(instance_type: InstanceType, *, provider: Provider | None = None) -> TypeSpec:
    """The planner's view of `instance_type`. Its provider is read (select it with the row), unless the
    caller hands it over already loaded."""
    provider = provider or instance_type.provider
    return TypeSpec(
        code=instance_type.code, gpu_count=instance_type.gpu_count, vram_per_gpu_gb=instance_type.vram_per_gpu_gb,
        is_mock=provider.is_mock, operator_run=provider.is_static, gpu_model=instance_type.gpu_model,
        compute_capability=instance_type.compute_capability,
        root_volumes={kind: tuple(limits) for kind, limits in (instance_type.root_volumes or {}).items()},
        engine_image=instance_type.engine_image,
    )


def launch_plan(model: LlmModel, instance_type: InstanceType, *, provider: Provider | None = None
                ) -> LaunchPlan | Refusal:
    """The plan that serves `model` on `instance_type` (of `provider`, when the caller has it loaded), or
    the Refusal that says why there is none."""
    return plan_launch(model_spec(model), type_spec(instance_type, provider=provider))


def incompatibility_reason(model: LlmModel, instance_type: InstanceType) -> str | None:
    """Why `model` cannot run on `instance_type` (the planner's refusal), or None when a plan exists."""
    plan = launch_plan(model, instance_type)
    return None if plan.fits else plan.reason


def is_compatible(model: LlmModel, instance_type: InstanceType) -> bool:
    return incompatibility_reason(model, instance_type) is None


def compatible_models(instance_type: InstanceType) -> QuerySet[LlmModel]:
    """The models the planner finds a plan for on `instance_type` (a queryset: callers filter and order it)."""
    target = type_spec(instance_type)
    fitting = [model.pk for model in LlmModel.objects.all() if plan_launch(model_spec(model), target).fits]
    return LlmModel.objects.filter(pk__in=fitting)


def compatible_instance_types(model: LlmModel) -> QuerySet[InstanceType]:
    """The instance types the planner finds a plan for `model` on."""
    wanted = model_spec(model)
    types = InstanceType.objects.select_related("provider")
    fitting = [row.pk for row in types if plan_launch(wanted, type_spec(row)).fits]
    return types.filter(pk__in=fitting)


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


def offered_zone_codes(instance_type: InstanceType) -> list[str]:
    """The codes of the zones `instance_type` is offered in, sorted (what an audit row compares)."""
    return sorted(InstanceTypeZone.objects.filter(instance_type=instance_type).values_list("zone__code", flat=True))


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
