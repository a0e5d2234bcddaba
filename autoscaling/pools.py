"""Pools as operators define them: create, change, enable, disable and delete, every rule checked here.

`pool_errors` says what is wrong with a pool's definition (field -> messages, each naming the reason);
`create_pool` and `update_pool` raise a ValidationError carrying those errors and write nothing then. The
API, the dashboard forms and the admin all call these, so each rule lives in this module only.

Two decisions worth naming:
- min_size 0 and scale_to_zero go together. The policy keeps one instance while scale_to_zero is off
  (its floor is max(min_size, 1)) and never idles a pool with min_size > 0 down to zero, so either half
  alone would be a setting that does not do what it says.
- A pool with live members (anything not terminated, archived or refused) is not deleted: `delete_pool`
  raises PoolInUse (a 409 in the API). Detaching them would leave paid machines that no pool drains,
  replaces or sizes. The operator disables the pool, terminates its instances, then deletes it.

Every change an operator makes is written to the action log as a SCALE_DECISION row, beside the autoscaler's
own decisions (a new min_size is as much a sizing decision as a tick's), through the audit trail
(monitoring/audit.py): component `api`, metadata `{"pool": name, "source": "api"|"page"|"admin", "changes":
{field: {"before", "after"}}, "change": "created"|"updated"|..., "reason": ...}`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone

from autoscaling.models import (
    DEFAULT_DRAIN_TIMEOUT_S,
    DEFAULT_HOLD_QUEUE_SIZE,
    DEFAULT_HOLD_TIMEOUT_S,
    DEFAULT_IDLE_PERIOD_S,
    DEFAULT_SCALE_DOWN_WINDOW_S,
    DEFAULT_SCALE_UP_WINDOW_S,
    DEFAULT_TARGET_IN_FLIGHT,
    Pool,
    PoolChoice,
)
from catalog.models import InstanceType, LlmModel, Zone
from catalog.services import incompatibility_reason, is_offered, offer_rejection_reason
from instances.status import ENDED
from monitoring.audit import Source, record_change

# Far above what one model needs, low enough that a typo (10000) is caught rather than paid for.
MAX_POOL_SIZE = 1000
MAX_CHOICES = 20
MAX_TARGET_IN_FLIGHT = 10_000
MAX_TTFT_OBJECTIVE_S = 600
# Windows, timeouts and idle periods: a day at most.
MAX_PERIOD_S = 86_400
# The router keeps held requests open (streams kept alive) this long at most.
MAX_HOLD_TIMEOUT_S = 3_600
MAX_HOLD_QUEUE_SIZE = 10_000
NAME_MAX_LENGTH = Pool._meta.get_field("name").max_length
# Names the Pools pages use for their own paths (/pools/new/).
RESERVED_NAMES = frozenset({"new"})


class Choice(NamedTuple):
    """One (instance type, zone) a pool may grow on, in the order the operator gave them."""

    instance_type: InstanceType
    zone: Zone

    @property
    def label(self) -> str:
        return f"{self.instance_type.code} in {self.zone.code}"


@dataclass(frozen=True)
class Bounds:
    low: float
    high: float
    whole: bool = True  # an integer setting
    optional: bool = False  # None is allowed (no objective)
    above_low: bool = False  # strictly above `low`

    def error(self, value) -> str | None:
        if value is None:
            return None if self.optional else "is required"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if self.whole and not isinstance(value, int):
            return "must be a whole number"
        if not math.isfinite(value):
            return "must be a finite number"
        if value < self.low or (self.above_low and value == self.low):
            return f"must be more than {self.low:g}" if self.above_low else f"must be at least {self.low:g}"
        if value > self.high:
            return f"must be at most {self.high:g}"
        return None


SETTING_BOUNDS: dict[str, Bounds] = {
    "min_size": Bounds(0, MAX_POOL_SIZE),
    "max_size": Bounds(1, MAX_POOL_SIZE),
    "target_in_flight": Bounds(0, MAX_TARGET_IN_FLIGHT, whole=False, above_low=True),
    "ttft_p95_objective_s": Bounds(0, MAX_TTFT_OBJECTIVE_S, whole=False, optional=True, above_low=True),
    "scale_up_window_s": Bounds(1, MAX_PERIOD_S),
    "scale_down_window_s": Bounds(1, MAX_PERIOD_S),
    "drain_timeout_s": Bounds(0, MAX_PERIOD_S),
    "idle_period_s": Bounds(1, MAX_PERIOD_S),
    "hold_timeout_s": Bounds(1, MAX_HOLD_TIMEOUT_S),
    "hold_queue_size": Bounds(1, MAX_HOLD_QUEUE_SIZE),
}
FLAGS = ("enabled", "scale_to_zero")
# Every setting an operator chooses, in the order forms and the API show them.
SETTINGS = ("enabled", *SETTING_BOUNDS, "scale_to_zero")

# What a new pool starts with. min_size is 1, not the column's 0: 0 means "may scale to zero" (above).
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "min_size": 1,
    "max_size": 1,
    "target_in_flight": DEFAULT_TARGET_IN_FLIGHT,
    "ttft_p95_objective_s": None,
    "scale_up_window_s": DEFAULT_SCALE_UP_WINDOW_S,
    "scale_down_window_s": DEFAULT_SCALE_DOWN_WINDOW_S,
    "drain_timeout_s": DEFAULT_DRAIN_TIMEOUT_S,
    "idle_period_s": DEFAULT_IDLE_PERIOD_S,
    "hold_timeout_s": DEFAULT_HOLD_TIMEOUT_S,
    "hold_queue_size": DEFAULT_HOLD_QUEUE_SIZE,
    "scale_to_zero": False,
}


class PoolInUse(Exception):
    """The pool cannot be deleted now; the message says why and what to do."""


# --- Validation -----------------------------------------------------------------------------


def pool_errors(
    *,
    model: LlmModel | None,
    choices: Sequence[Choice],
    settings: Mapping[str, Any],
    name: str | None = None,
    pool: Pool | None = None,
    check_model: bool = True,
    check_choices: bool = True,
) -> dict[str, list[str]]:
    """What is wrong with this pool definition, as field -> messages; empty when it may be saved.

    `name` is checked for a new pool only (`pool` None): a pool's name never changes, it names it in
    URLs and logs. `check_model` / `check_choices` False skip rules about catalog rows an update left as
    they were: a zone retired since must not stop an operator from, say, lowering max_size.
    """
    errors: dict[str, list[str]] = defaultdict(list)
    if pool is None:
        errors["name"] += _name_errors(name)
    if check_model:
        errors["model"] += _model_errors(model, pool=pool)
    if check_choices:
        errors["choices"] += choice_errors(model, choices)
    for field, messages in settings_errors(settings).items():
        errors[field] += messages
    return {field: messages for field, messages in errors.items() if messages}


def _name_errors(name: str | None) -> list[str]:
    if not name:
        return ["A pool needs a name."]
    if len(name) > NAME_MAX_LENGTH:
        return [f"At most {NAME_MAX_LENGTH} characters."]
    try:
        validate_slug(name)
    except ValidationError:
        return ["Use letters, digits, - and _ only: the name is part of URLs."]
    if name in RESERVED_NAMES:
        return [f"{name} is reserved: choose another name."]
    if Pool.objects.filter(name=name).exists():
        return [f"A pool named {name} already exists."]
    return []


def _model_errors(model: LlmModel | None, *, pool: Pool | None) -> list[str]:
    if model is None:
        return ["A pool serves one model: choose it."]
    messages = []
    if not model.active:
        messages.append(f"{model.code} is not active in the catalog.")
    if pool is not None and pool.model_id != model.pk:
        live = live_members(pool).count()
        if live:
            messages.append(
                f"The pool's {live} live instance(s) serve {pool.model.code}: terminate them before changing its model."
            )
    return messages


def choice_errors(model: LlmModel | None, choices: Sequence[Choice]) -> list[str]:
    """Why these ordered choices cannot carry `model`, one message per problem, each numbered (#1 first)."""
    if not choices:
        return ["At least one (instance type, zone) is needed."]
    if len(choices) > MAX_CHOICES:
        return [f"At most {MAX_CHOICES} choices."]
    messages = []
    seen: dict[tuple[int, int], int] = {}
    for number, choice in enumerate(choices, start=1):
        key = (choice.instance_type.pk, choice.zone.pk)
        if key in seen:
            messages.append(f"#{number}: {choice.label} is already choice #{seen[key]}.")
            continue
        seen[key] = number
        messages += [f"#{number}: {reason}" for reason in _choice_reasons(model, choice)]
    return messages


def _choice_reasons(model: LlmModel | None, choice: Choice) -> list[str]:
    instance_type, zone = choice
    mismatch = offer_rejection_reason(instance_type=instance_type, zone=zone)
    if mismatch:
        return [mismatch]
    if instance_type.provider.is_static:  # README, "A GPU machine you run yourself"
        return [f"{instance_type.code} in {zone.code} is a host you run yourself: registered, never rented by a pool"]
    reasons = []
    if not instance_type.provider.active:
        reasons.append(f"provider {instance_type.provider.code} is not active")
    if not instance_type.active:
        reasons.append(f"{instance_type.code} is not active")
    if not (zone.active and zone.region.active):
        reasons.append(f"zone {zone.code} is not active")
    if not is_offered(instance_type, zone):
        reasons.append(f"{instance_type.code} is not offered in {zone.code}")
    if model is not None:
        incompatible = incompatibility_reason(model, instance_type)
        if incompatible:
            reasons.append(incompatible)
    return reasons


def settings_errors(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """Bounds of each setting, then the rules between them (checked only once both sides are sound)."""
    errors: dict[str, list[str]] = {}
    for field, bounds in SETTING_BOUNDS.items():
        message = bounds.error(settings.get(field))
        if message:
            errors[field] = [f"{field} {message}."]
    for field in FLAGS:
        if not isinstance(settings.get(field), bool):
            errors[field] = [f"{field} must be true or false."]

    def sound(*fields) -> bool:
        return not any(field in errors for field in fields)

    min_size, max_size = settings.get("min_size"), settings.get("max_size")
    if sound("min_size", "max_size") and min_size > max_size:
        errors["min_size"] = [f"min_size {min_size} is above max_size {max_size}."]
    up, down = settings.get("scale_up_window_s"), settings.get("scale_down_window_s")
    if sound("scale_up_window_s", "scale_down_window_s") and up > down:
        errors["scale_up_window_s"] = [
            f"scale_up_window_s {up} is longer than scale_down_window_s {down}: a pool reacts to bursts faster "
            "than to calm, never slower."
        ]
    if sound("min_size", "scale_to_zero"):
        if settings["scale_to_zero"] and min_size > 0:
            errors["scale_to_zero"] = [f"A pool that scales to zero needs min_size 0 (it is {min_size})."]
        elif not settings["scale_to_zero"] and min_size == 0:
            errors.setdefault("min_size", []).append(
                "min_size 0 lets the pool scale to zero: tick scale_to_zero too, or keep at least 1."
            )
    return errors


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


# --- Changes --------------------------------------------------------------------------------


def create_pool(*, name: str, model: LlmModel, choices: Sequence[Choice], actor=None, source: str = Source.API,
                **settings) -> Pool:
    """A new pool with its ordered choices, in one transaction.

    `settings` are any of SETTINGS; the others take DEFAULTS. Raises ValidationError (field -> messages)
    and writes nothing when a rule is broken; TypeError for a setting that does not exist. `source` says
    where the operator asked (monitoring.audit.Source), for the audit row.
    """
    values = {**DEFAULTS, **_known(settings)}
    choices = list(choices)
    _raise_if(pool_errors(name=name, model=model, choices=choices, settings=values))
    with transaction.atomic():
        try:
            with transaction.atomic():
                pool = Pool.objects.create(name=name, model=model, **values)
        except IntegrityError:
            # Another request created the same name since it was checked.
            raise ValidationError({"name": [f"A pool named {name} already exists."]}) from None
        _save_choices(pool, choices)
        _log(pool, actor, change="created", source=source, after=pool_snapshot(pool, choices))
    return pool


def update_pool(
    pool: Pool,
    *,
    model: LlmModel | None = None,
    choices: Sequence[Choice] | None = None,
    actor=None,
    source: str = Source.API,
    **changes,
) -> Pool:
    """Change a pool's model, choices (replaced as a whole, in order) or settings; omitted ones stay.

    Validates the pool as it would be after the change and raises ValidationError, changing nothing, when a
    rule is broken. Only the fields an operator owns are written, so a tick deciding for the pool at the
    same moment keeps its own (desired size, reason, policy state). Returns the pool, fresh.
    """
    changes = _known(changes)
    with transaction.atomic():
        locked = Pool.objects.select_for_update().select_related("model").get(pk=pool.pk)
        current_choices = pool_choices(locked)
        new_model = model if model is not None else locked.model
        new_choices = list(choices) if choices is not None else current_choices
        values = {**{field: getattr(locked, field) for field in SETTINGS}, **changes}
        model_changed = new_model.pk != locked.model_id
        choices_changed = _keys(new_choices) != _keys(current_choices)
        _raise_if(
            pool_errors(
                model=new_model, choices=new_choices, settings=values, pool=locked,
                check_model=model_changed, check_choices=model_changed or choices_changed,
            )
        )
        before = pool_snapshot(locked, current_choices)
        changed = model_changed or choices_changed or any(getattr(locked, field) != new for field, new in values.items())
        if choices_changed:
            _save_choices(locked, new_choices, replace=True)
        if changed:
            for field, value in values.items():
                setattr(locked, field, value)
            locked.model = new_model
            locked.save(update_fields=[*SETTINGS, "model", "updated_at"])
            _log(locked, actor, change="updated", source=source, before=before,
                 after=pool_snapshot(locked, new_choices))
    return locked


def set_pool_enabled(pool: Pool, *, enabled: bool, actor=None, source: str = Source.API) -> bool:
    """Enable or disable a pool (a disabled pool is left at its size: no scaling, no holding).

    Returns True when the flag changed, False when the pool already had it (a second click, another tab).
    """
    rows = Pool.objects.filter(pk=pool.pk).exclude(enabled=enabled)
    changed = rows.update(enabled=enabled, updated_at=timezone.now())
    pool.enabled = enabled
    if changed:
        _log(pool, actor, change="enabled" if enabled else "disabled", source=source,
             before={"enabled": not enabled}, after={"enabled": enabled})
    return changed == 1


def delete_pool(pool: Pool, *, actor=None, source: str = Source.API) -> None:
    """Delete a pool with its choices and history. Raises PoolInUse while it has live members, or while a
    tick is deciding for it (that tick may be requesting a machine for it right now)."""
    with transaction.atomic():
        # The row lock makes a tick that claims the pool from now on wait, then find it gone.
        locked = Pool.objects.select_for_update().filter(pk=pool.pk).first()
        if locked is None:
            return  # deleted already (another tab): what was asked is done
        if locked.claimed_until is not None and locked.claimed_until > timezone.now():
            raise PoolInUse(f"The autoscaler is deciding for pool {locked.name} right now: try again in a minute.")
        live = live_members(locked).count()
        if live:
            raise PoolInUse(
                f"Pool {locked.name} still has {live} live instance(s): disable it, terminate them "
                "(Instances page), then delete it."
            )
        _log(locked, actor, change="deleted", source=source, before=pool_snapshot(locked))
        locked.delete()


# --- Helpers --------------------------------------------------------------------------------


def live_members(pool: Pool):
    """The pool's instances that exist or may still exist at the provider (not finished)."""
    return pool.instances.exclude(status__in=ENDED)


def pool_choices(pool: Pool) -> list[Choice]:
    rows = pool.choices.select_related("instance_type__provider", "zone__region").order_by("position")
    return [Choice(row.instance_type, row.zone) for row in rows]


def _save_choices(pool: Pool, choices: Sequence[Choice], *, replace: bool = False) -> None:
    if replace:
        pool.choices.all().delete()
    PoolChoice.objects.bulk_create(
        [
            PoolChoice(pool=pool, position=position, instance_type=choice.instance_type, zone=choice.zone)
            for position, choice in enumerate(choices, start=1)
        ]
    )


def _known(settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise TypeError(f"unknown pool setting(s): {', '.join(unknown)}")
    return dict(settings)


def _keys(choices: Sequence[Choice]) -> list[tuple[int, int]]:
    return [(choice.instance_type.pk, choice.zone.pk) for choice in choices]


def _labels(choices: Sequence[Choice]) -> list[str]:
    return [choice.label for choice in choices]


def pool_snapshot(pool: Pool, choices: Sequence[Choice] | None = None) -> dict[str, Any]:
    """What an operator owns of a pool, as its audit rows compare it: model, settings and choices in order."""
    return {"model": pool.model.code, **{field: getattr(pool, field) for field in SETTINGS},
            "choices": _labels(pool_choices(pool) if choices is None else choices)}


def pool_log_metadata(pool: Pool, *, change: str, actor, fields: Sequence[str] = ()) -> dict[str, Any]:
    """What a pool's SCALE_DECISION row says beside its changes: the pool, and the reason the pool page shows."""
    who = actor.get_username() if actor is not None and actor.is_authenticated else "an operator"
    reason = f"{change} by {who}" + (f": {', '.join(sorted(fields))}" if change == "updated" and fields else "")
    return {"pool": pool.name, "pool_id": pool.pk, "change": change, "reason": reason}


def _log(pool: Pool, actor, *, change: str, source: str, before: dict | None = None,
         after: dict | None = None) -> None:
    fields = [name for name in {**(before or {}), **(after or {})}
              if (before or {}).get(name) != (after or {}).get(name)]
    record_change("SCALE_DECISION", target=pool, user=actor, source=source, before=before, after=after,
                  metadata=pool_log_metadata(pool, change=change, actor=actor, fields=fields))
