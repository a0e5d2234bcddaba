"""Query-string filters of the action log, shared by the API and the Monitoring page."""

import re
import uuid
from datetime import timedelta

import django_filters
from django import forms
from django.utils import timezone

from monitoring.models import ActionLog

ACTION_TYPE_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# More codes than the catalog holds is a mistake, not a query worth sending to the database.
MAX_ACTION_TYPES = 100
# The short ids the pages show are the first 8 characters of a UUID (inventiv/templatetags/display.py); a
# shorter prefix is allowed down to this many hex digits (fewer would match much of the log).
MIN_ID_PREFIX = 4
HEX_PREFIX = re.compile(r"^[0-9a-f]{%d,32}$" % MIN_ID_PREFIX)
UUID_HEX_DIGITS = 32
# The time ranges of `?window=`: the rows of the last ... (README, "Using it": Monitoring).
WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6),
           "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
WINDOW_LABELS = {"15m": "last 15 minutes", "1h": "last hour", "6h": "last 6 hours", "24h": "last 24 hours",
                 "7d": "last 7 days", "30d": "last 30 days"}


class InstanceIdField(forms.CharField):
    """A whole instance id (UUID, with or without dashes) or its first characters (the 8 the pages show),
    as lower-case hex digits."""

    def to_python(self, value) -> str:
        text = (super().to_python(value) or "").strip().lower()
        if not text:
            return ""
        digits = text.replace("-", "")
        if not HEX_PREFIX.match(digits):
            raise forms.ValidationError(
                "%(value)s is not an instance id: give the whole UUID or its first %(least)d to 32 hex digits "
                "(the 8-character ids the pages show work)", params={"value": text[:40], "least": MIN_ID_PREFIX},
            )
        return digits


class InstanceIdFilter(django_filters.Filter):
    """Rows of one instance, or of every instance whose id starts with a prefix: the prefix becomes a range of
    UUIDs (prefix-000... to prefix-fff...), which the instance index answers like an equality."""

    field_class = InstanceIdField

    def filter(self, qs, value):
        if not value:
            return qs
        if len(value) == UUID_HEX_DIGITS:
            return qs.filter(**{self.field_name: uuid.UUID(value)})
        low = uuid.UUID(value.ljust(UUID_HEX_DIGITS, "0"))
        high = uuid.UUID(value.ljust(UUID_HEX_DIGITS, "f"))
        return qs.filter(**{f"{self.field_name}__gte": low, f"{self.field_name}__lte": high})


class CodeListField(forms.Field):
    """Action-type codes, repeated (`?action_type=A&action_type=B`) or comma separated (`?action_type=A,B`)."""

    widget = forms.SelectMultiple

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        values = [value] if isinstance(value, str) else value
        codes = [code.strip() for item in values for code in str(item).split(",") if code.strip()]
        bad = [code for code in codes if not ACTION_TYPE_CODE.match(code)]
        if bad:
            # As params, not formatted in: django-filter %-formats every message, and a code may hold a `%`.
            raise forms.ValidationError(
                "%(codes)s is not an action-type code (UPPER_SNAKE_CASE, e.g. REQUEST_CREATE)",
                params={"codes": ", ".join(bad[:5])},
            )
        if len(codes) > MAX_ACTION_TYPES:
            raise forms.ValidationError("at most %(most)d action types at once", params={"most": MAX_ACTION_TYPES})
        return list(dict.fromkeys(codes))


class CodeListFilter(django_filters.Filter):
    field_class = CodeListField

    def filter(self, qs, value):
        if not value:
            return qs
        if len(value) == 1:
            return qs.filter(**{self.field_name: value[0]})
        return qs.filter(**{f"{self.field_name}__in": value})


class ActionLogFilter(django_filters.FilterSet):
    instance = InstanceIdFilter(
        field_name="instance_id",
        help_text="Instance id (UUID), or its first characters (at least 4 hex digits; the 8-character short id)",
    )
    window = django_filters.ChoiceFilter(
        choices=list(WINDOW_LABELS.items()), method="in_window",
        help_text="Only rows of the last 15m, 1h, 6h, 24h, 7d or 30d",
    )
    component = django_filters.ChoiceFilter(choices=ActionLog.Component.choices)
    status = django_filters.ChoiceFilter(choices=ActionLog.Status.choices)
    action_type = CodeListFilter(help_text="One or several action-type codes, repeated or comma separated")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601, inclusive"
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601, exclusive"
    )

    class Meta:
        model = ActionLog
        fields = ["instance", "component", "status", "action_type", "window", "created_after", "created_before"]

    def in_window(self, queryset, name, value):
        return queryset.filter(created_at__gte=timezone.now() - WINDOWS[value]) if value else queryset


def is_narrowed(params) -> bool:
    """Whether the query string `params` asks for any filter of the action log."""
    return any(value.strip() for name in ActionLogFilter.base_filters for value in params.getlist(name))
