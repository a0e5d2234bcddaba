"""Typed runtime settings: operators change timings without a deploy (README, "Configuration").

The one cache of settings in the project lives here. Each process reads the whole table at most every
SETTINGS_CACHE_S and keeps the typed values: provisioning one instance reads five settings and every heartbeat
answer carries the interval, so a query (or a parse) for each read would be a large share of their work. A
change made in this process applies at once (after its commit); every other process sees it within
SETTINGS_CACHE_S seconds.
"""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver

from catalog.models import RuntimeSetting
from catalog.setting_specs import SETTING_SPECS

SETTINGS_CACHE_S = 5
_cache: tuple[float, dict[str, object]] | None = None  # (valid until, in time.monotonic(); key -> typed value)


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


def setting_value(row: RuntimeSetting):
    """The typed value of a stored setting; its code default when the stored value is out of type or bounds
    (edited by hand in the database)."""
    try:
        return parse_setting_value(value_type=row.value_type, raw=row.value, min_value=row.min_value,
                                   max_value=row.max_value)
    except ValidationError:
        return default_value(row.key)


def default_value(key: str):
    spec = SETTING_SPECS.get(key)
    if spec is None:
        raise KeyError(f"unknown runtime setting {key!r}")
    return parse_setting_value(value_type=spec.value_type, raw=spec.default)


def get_setting(key: str):
    """The typed current value of runtime setting `key` (its code default when no row exists)."""
    if transaction.get_connection().in_atomic_block:
        # A transaction sees its own uncommitted changes and may still roll them back: what it reads is
        # neither kept nor taken from what others committed a few seconds ago.
        row = RuntimeSetting.objects.filter(key=key).first()
        return default_value(key) if row is None else setting_value(row)
    global _cache
    now = time.monotonic()
    if _cache is None or _cache[0] <= now:
        _cache = (now + SETTINGS_CACHE_S, {row.key: setting_value(row) for row in RuntimeSetting.objects.all()})
    if key in _cache[1]:
        return _cache[1][key]
    return default_value(key)


def forget_settings() -> None:
    """Drop this process's copy of the settings: the next `get_setting` reads the table."""
    global _cache
    _cache = None


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
