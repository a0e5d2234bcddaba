"""Query-string filters of the action log, shared by the API and the Monitoring page."""

import re

import django_filters
from django import forms

from monitoring.models import ActionLog

ACTION_TYPE_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# More codes than the catalog holds is a mistake, not a query worth sending to the database.
MAX_ACTION_TYPES = 100


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
    instance = django_filters.UUIDFilter(field_name="instance_id", help_text="Instance id (UUID)")
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
        fields = ["instance", "component", "status", "action_type", "created_after", "created_before"]


def is_narrowed(params) -> bool:
    """Whether the query string `params` asks for any filter of the action log."""
    return any(value.strip() for name in ActionLogFilter.base_filters for value in params.getlist(name))
