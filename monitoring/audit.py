"""The audit trail of operator writes: who changed what, field by field, and from where (README, "Audit").

Every write an operator makes to configuration (catalog rows and offers, runtime settings, API keys, pools,
budgets, providers' secrets), through the REST API, a dashboard page or the Django admin, writes one
action-log row through `record_change`: the user, the source (`api`, `page`, `admin`), the row changed and
each changed field's value before and after. A field that holds a secret (by its name: `..._token`,
`..._hash`, `secret`, `password`, `..._encrypted`, or named by the caller) is shown as `***` when set, so the
log says that it changed, never what it holds. An update that changed nothing writes nothing.

The adapters call it through `AuditedViewSetMixin` (DRF viewsets), `AuditedAdmin` (ModelAdmin, inline
rows included), or directly (`snapshot` before, `record_change` after) where a page or service writes.
The action type is `<AREA>_<CREATE|UPDATE|DELETE>` (CATALOG, SETTING, MACHINE_SECRET, API_KEY, BUDGET;
API_KEY_REVOKE), each in the action-type catalog; pools keep their SCALE_DECISION rows, written through here
too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from monitoring.models import ActionLog
from monitoring.services import Component, record_action

MASK = "***"
# Field names that hold a secret: a word of the name (split on `_`) is one of these.
SECRET_NAME = re.compile(r"(^|_)(secret|token|password|passphrase|hash|encrypted|credentials?)(_|$)")


class Source:
    """Where an operator's write came from."""

    API = "api"
    PAGE = "page"
    ADMIN = "admin"


class Verb:
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class Masked(str):
    """A secret's value in a snapshot: `***` when set, "" when empty. Two snapshots tell a changed secret by
    a digest kept in memory only (never written)."""

    digest: str

    def __new__(cls, secret) -> Masked:
        masked = super().__new__(cls, MASK if secret else "")
        masked.digest = hashlib.sha256(str(secret).encode()).hexdigest() if secret else ""
        return masked


def _comparable(value):
    return value.digest if isinstance(value, Masked) else value


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def _audited_fields(obj: models.Model, exclude: Iterable[str]) -> list[models.Field]:
    skipped = set(exclude)
    return [
        field for field in obj._meta.concrete_fields
        if not field.primary_key and field.name not in skipped
        and not getattr(field, "auto_now", False) and not getattr(field, "auto_now_add", False)
    ]


def _json(value):
    """The value as the action log's JSON keeps it (decimals and dates as text)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(obj: models.Model, *, exclude: Iterable[str] = (), secret: Iterable[str] = (),
             extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields of `obj` an audit row compares: concrete fields but the primary key and automatic
    timestamps, a related row by its name (`str`), secrets masked; `extra` adds derived values (a pool's
    choices)."""
    secrets = set(secret)
    values: dict[str, Any] = {}
    for field in _audited_fields(obj, exclude):
        if field.is_relation:
            related = getattr(obj, field.name)
            values[field.name] = None if related is None else str(related)
        else:
            raw = field.value_from_object(obj)
            values[field.name] = Masked(raw) if field.name in secrets or is_secret(field.name) else _json(raw)
    for name, value in (extra or {}).items():
        values[name] = Masked(value) if name in secrets or is_secret(name) else _json(value)
    return values


def stored_snapshot(obj: models.Model, **options) -> dict[str, Any] | None:
    """The snapshot of the row as the database holds it now (a form may have changed `obj` in memory
    already); None when there is none."""
    stored = type(obj)._default_manager.filter(pk=obj.pk).first() if obj.pk is not None else None
    return None if stored is None else snapshot(stored, **options)


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """{field: {"before": ..., "after": ...}} for every field whose value differs (all set fields of a row
    created or deleted)."""
    before, after = before or {}, after or {}
    changed = {}
    for name in [*before, *(name for name in after if name not in before)]:
        old, new = before.get(name), after.get(name)
        if _comparable(old) != _comparable(new):
            changed[name] = {"before": old, "after": new}
    return changed


def describe(obj: models.Model) -> str:
    """How the row reads in the log: its kind and name (`zone fr-par-2`)."""
    return f"{obj._meta.verbose_name} {obj}"


def record_change(action_type: str, *, target: models.Model | str, user, source: str,
                  before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
                  metadata: Mapping[str, Any] | None = None) -> ActionLog | None:
    """Write the audit row of one operator write; None (nothing written) for an update that changed nothing.

    `before` is None for a row created, `after` None for a row deleted (snapshots from `snapshot`);
    `metadata` adds to what the row says (a pool's name for the pool page).
    """
    diff = changes(before, after)
    if before is not None and after is not None and not diff:
        return None
    where = {"target": target if isinstance(target, str) else describe(target), "source": source}
    if isinstance(target, models.Model):
        where.update(object=target._meta.label_lower, object_id=_json(target.pk))
    return record_action(action_type, component=Component.API, user=user,
                         metadata={**where, "changes": diff, **(metadata or {})})


def action_type(area: str, verb: str) -> str:
    return f"{area}_{verb}"


# --- Adapters --------------------------------------------------------------------------------------------


class AuditedViewSetMixin:
    """A DRF ModelViewSet whose creates, updates and deletes are audited (source `api`): set `audit_area`."""

    audit_area: str

    def perform_create(self, serializer):
        with transaction.atomic():
            super().perform_create(serializer)
            obj = serializer.instance
            record_change(action_type(self.audit_area, Verb.CREATE), target=obj, user=self.request.user,
                          source=Source.API, after=snapshot(obj))

    def perform_update(self, serializer):
        with transaction.atomic():
            before = snapshot(serializer.instance)
            super().perform_update(serializer)
            obj = serializer.instance
            record_change(action_type(self.audit_area, Verb.UPDATE), target=obj, user=self.request.user,
                          source=Source.API, before=before, after=snapshot(obj))

    def perform_destroy(self, instance):
        with transaction.atomic():
            before, target = snapshot(instance), describe(instance)
            super().perform_destroy(instance)
            record_change(action_type(self.audit_area, Verb.DELETE), target=target, user=self.request.user,
                          source=Source.API, before=before)


class AuditedAdmin:
    """A ModelAdmin whose adds, changes and deletes (its inline rows' too) are audited (source `admin`).

    Set `audit_area`; override `audit_snapshot` to compare derived values, `audit_action_type` and
    `audit_metadata` to write another action type (a pool's SCALE_DECISION), and set `audit_inlines = False`
    when the snapshot already holds what the inlines edit.
    """

    audit_area: str
    audit_inlines = True
    _BEFORE = "_audit_before"

    def audit_snapshot(self, obj: models.Model) -> dict[str, Any]:
        return snapshot(obj)

    def audit_action_type(self, verb: str) -> str:
        return action_type(self.audit_area, verb)

    def audit_metadata(self, request, obj: models.Model, verb: str) -> dict[str, Any]:
        return {}

    def _record(self, request, obj, verb, *, before=None, after=None, target=None, area=None):
        kind = action_type(area, verb) if area else self.audit_action_type(verb)
        extra = {} if area else self.audit_metadata(request, obj, verb)
        record_change(kind, target=target or obj, user=request.user, source=Source.ADMIN, before=before,
                      after=after, metadata=extra)

    def save_form(self, request, form, change):
        obj = super().save_form(request, form, change)
        if change:
            # The form has changed `obj` in memory already; the database still holds what was there.
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            setattr(obj, self._BEFORE, None if stored is None else self.audit_snapshot(stored))
        return obj

    def log_addition(self, request, obj, message):
        self._record(request, obj, Verb.CREATE, after=self.audit_snapshot(obj))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        # Called once the row and its inlines are saved.
        self._record(request, obj, Verb.UPDATE, before=getattr(obj, self._BEFORE, None) or {},
                     after=self.audit_snapshot(obj))
        return super().log_change(request, obj, message)

    def delete_model(self, request, obj):
        before, target = self.audit_snapshot(obj), describe(obj)
        metadata = self.audit_metadata(request, obj, Verb.DELETE)
        super().delete_model(request, obj)
        record_change(self.audit_action_type(Verb.DELETE), target=target, user=request.user, source=Source.ADMIN,
                      before=before, metadata=metadata)

    def delete_queryset(self, request, queryset):
        rows = [(self.audit_snapshot(obj), describe(obj), self.audit_metadata(request, obj, Verb.DELETE))
                for obj in queryset]
        super().delete_queryset(request, queryset)
        for before, target, metadata in rows:
            record_change(self.audit_action_type(Verb.DELETE), target=target, user=request.user,
                          source=Source.ADMIN, before=before, metadata=metadata)

    def save_formset(self, request, form, formset, change):
        if not self.audit_inlines:
            return super().save_formset(request, form, formset, change)
        befores = {inline.instance.pk: snapshot(type(inline.instance)._default_manager.get(pk=inline.instance.pk))
                   for inline in formset.initial_forms if inline.instance.pk is not None and inline.has_changed()}
        deleted = [(snapshot(inline.instance), describe(inline.instance)) for inline in formset.deleted_forms
                   if inline.instance.pk is not None]
        result = super().save_formset(request, form, formset, change)
        area = self.audit_area
        for obj in formset.new_objects:
            self._record(request, obj, Verb.CREATE, after=snapshot(obj), area=area)
        for obj, _fields in formset.changed_objects:
            self._record(request, obj, Verb.UPDATE, before=befores.get(obj.pk, {}), after=snapshot(obj), area=area)
        for before, target in deleted:
            record_change(action_type(area, Verb.DELETE), target=target, user=request.user, source=Source.ADMIN,
                          before=before)
        return result
