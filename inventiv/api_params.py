"""Query-string helpers every app's API uses: booleans that fail with a 400 naming the parameter, and an
ordering that stays stable across pages (whole-number paging parameters: inventiv/pagination.py)."""

from django.core.exceptions import FieldDoesNotExist
from django.db.models import F
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

TRUE_VALUES, FALSE_VALUES = ("1", "true", "yes"), ("", "0", "false", "no")


def query_bool(request, name: str) -> bool:
    """The boolean `?name=` (false when absent); a 400 naming `name` for anything but 1/0/true/false/yes/no."""
    raw = request.query_params.get(name, "").strip().lower()
    if raw in TRUE_VALUES:
        return True
    if raw in FALSE_VALUES:
        return False
    raise ValidationError({name: f"{raw!r} is not one of 1, 0, true, false"})


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` with the primary key as the last key (in the same direction as the first key), so rows
    with equal values keep one order across pages and newest-first indexes still serve the query."""

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if ordering and not {"pk", "-pk", "id", "-id"} & set(ordering):
            return [*ordering, "-pk" if ordering[0].startswith("-") else "pk"]
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
        if name in ("pk", "id") or "__" in name:
            return term
        try:
            nullable = model._meta.get_field(name).null
        except FieldDoesNotExist:  # an annotation: no index to keep
            nullable = True
        if not nullable:
            return term
        return F(name).desc(nulls_last=True) if term.startswith("-") else F(name).asc(nulls_last=True)
