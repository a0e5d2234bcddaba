"""Query-string filters of the action log, shared by the API and the Monitoring page."""

import re

import django_filters
from django import forms
from django.db.models import F
from rest_framework.filters import OrderingFilter

from monitoring.models import ActionLog

ACTION_TYPE_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# More codes than the catalog holds is a mistake, not a query worth sending to the database.
MAX_ACTION_TYPES = 50


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` with the primary key as the last key (in the same direction as the first key), so rows
    with equal values keep one order across pages and the newest-first indexes still serve the query."""

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if ordering and not {"pk", "-pk", "id", "-id"} & set(ordering):
            return [*ordering, "-id" if ordering[0].startswith("-") else "id"]
        return ordering

    def filter_queryset(self, request, queryset, view):
        ordering = self.get_ordering(request, queryset, view)
        if not ordering:
            return queryset
        return queryset.order_by(*(self._nulls_last(queryset.model, term) for term in ordering))

    @staticmethod
    def _nulls_last(model, term: str):
        """Rows without a value (a step still running has no duration) sort last, on every database.

        Only nullable columns get NULLS LAST: on the others it would stop PostgreSQL from reading the
        order straight from an index.
        """
        name = term.lstrip("-")
        if name in ("pk", "id") or "__" in name or not model._meta.get_field(name).null:
            return term
        return F(name).desc(nulls_last=True) if term.startswith("-") else F(name).asc(nulls_last=True)


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
            raise forms.ValidationError(
                f"{', '.join(bad[:5])} is not an action-type code (UPPER_SNAKE_CASE, e.g. REQUEST_CREATE)"
            )
        if len(codes) > MAX_ACTION_TYPES:
            raise forms.ValidationError(f"at most {MAX_ACTION_TYPES} action types at once")
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
