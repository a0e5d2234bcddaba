"""The one pagination of the REST API (README, "API conventions"): every list answers
`{"count", "next", "previous", "results"}`, paged with `?limit=` and `?offset=`.

A `limit` above MAX_LIMIT is clamped to it (a client asking for everything gets the largest page, not a
400); a limit or offset that is not a whole number, a limit below 1 or a negative offset is a 400 naming it.
A view may hand over a count it already has (the action log estimates large counts: see monitoring/selectors).
"""

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _whole(request, name: str, *, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: f"{raw!r} is not a whole number"}) from None
    if value < minimum:
        raise ValidationError({name: f"must be at least {minimum}"})
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=` (default DEFAULT_LIMIT, clamped to MAX_LIMIT) and `?offset=` (at most `max_offset`, where set)."""

    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT
    # Deep offsets make the database walk and drop every skipped row; a view may bound them.
    max_offset: int | None = None

    def paginate_queryset(self, queryset, request, view=None, *, count: int | None = None):
        self.known_count = count
        return super().paginate_queryset(queryset, request, view)

    def get_count(self, queryset) -> int:
        return self.known_count if self.known_count is not None else super().get_count(queryset)

    def get_limit(self, request) -> int:
        return min(_whole(request, self.limit_query_param, default=self.default_limit, minimum=1), self.max_limit)

    def get_offset(self, request) -> int:
        offset = _whole(request, self.offset_query_param, default=0, minimum=0)
        if self.max_offset is not None and offset > self.max_offset:
            raise ValidationError({self.offset_query_param: f"must be at most {self.max_offset}: narrow the filters "
                                                            "instead"})
        return offset

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["description"] = f"Rows per page (default {self.default_limit}; above {self.max_limit}, " \
                                           f"{self.max_limit})"
                parameter["schema"] = {"type": "integer", "minimum": 1}
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 0,
                                       **({"maximum": self.max_offset} if self.max_offset is not None else {})}
        return parameters
