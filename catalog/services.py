"""Catalog logic: compatibility, zone offers and typed runtime settings."""

import time
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver

from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, RuntimeSetting, Zone
from catalog.setting_specs import SETTING_SPECS

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


# --- Runtime settings -----------------------------------------------------------------------


def parse_setting_value(*, value_type: str, raw, min_value=None, max_value=None):
    """Turn `raw` into the typed value, or raise ValidationError saying why it is not acceptable."""
    text = str(raw).strip()
    try:
        if value_type == RuntimeSetting.ValueType.INT:
            value = int(text)
        elif value_type == RuntimeSetting.ValueType.FLOAT:
            value = float(text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
        elif value_type == RuntimeSetting.ValueType.BOOL:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            value = lowered in ("true", "1", "yes")
        else:
            value = text
    except ValueError:
        raise ValidationError({"value": f"{raw!r} is not a valid {value_type}"}) from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if min_value is not None and value < min_value:
            raise ValidationError({"value": f"{value} is below the minimum {min_value:g}"})
        if max_value is not None and value > max_value:
            raise ValidationError({"value": f"{value} is above the maximum {max_value:g}"})
    return value


# Each process reads the settings table at most this often (all rows at once): provisioning one instance
# reads five settings, and a query for each was a sixth of its database work. A change made in this process
# applies at once (`_forget_settings_on_commit`); every other process sees it within this many seconds.
SETTINGS_CACHE_S = 5
_settings_cache: tuple[float, dict[str, RuntimeSetting]] | None = None  # (valid until, time.monotonic(); rows)


def get_setting(key: str):
    """The typed current value of runtime setting `key` (its code default when no row exists)."""
    row = _setting_row(key)
    if row is not None:
        try:
            return parse_setting_value(
                value_type=row.value_type, raw=row.value, min_value=row.min_value, max_value=row.max_value
            )
        except ValidationError:
            pass  # a value edited out of range in the database: fall back to the default below
    spec = SETTING_SPECS.get(key)
    if spec is None:
        raise KeyError(f"unknown runtime setting {key!r}")
    return parse_setting_value(value_type=spec.value_type, raw=spec.default)


def _setting_row(key: str) -> RuntimeSetting | None:
    if transaction.get_connection().in_atomic_block:
        # A transaction sees its own uncommitted changes and may still roll them back: what it reads is
        # neither kept nor taken from what others committed a few seconds ago.
        return RuntimeSetting.objects.filter(key=key).first()
    global _settings_cache
    now = time.monotonic()
    if _settings_cache is None or _settings_cache[0] <= now:
        _settings_cache = (now + SETTINGS_CACHE_S, {row.key: row for row in RuntimeSetting.objects.all()})
    return _settings_cache[1].get(key)


def forget_settings() -> None:
    """Drop this process's copy of the settings: the next `get_setting` reads the table."""
    global _settings_cache
    _settings_cache = None


@receiver([post_save, post_delete], sender=RuntimeSetting)
def _forget_settings_on_commit(**kwargs) -> None:
    # After the commit, not now: a read in between would keep the old value, or one that rolls back.
    transaction.on_commit(forget_settings)


@receiver(post_migrate)
def _forget_settings_after_migrate(**kwargs) -> None:
    # A migration or a flush (the test runner's, between tests) replaces the table behind the signals above.
    forget_settings()


def update_setting(setting: RuntimeSetting, *, value) -> RuntimeSetting:
    """Validate `value` against the setting's type and bounds, then store it."""
    typed = parse_setting_value(
        value_type=setting.value_type, raw=value, min_value=setting.min_value, max_value=setting.max_value
    )
    setting.value = str(typed).lower() if isinstance(typed, bool) else str(typed)
    setting.save(update_fields=["value", "updated_at"])
    return setting


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
