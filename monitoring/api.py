"""The action-log API: filtered, ordered, offset-paginated listings with optional counts."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.pagination import LimitOffsetPagination

from inventiv.api_params import StableOrderingFilter, query_bool, query_int
from monitoring.filters import ActionLogFilter, is_narrowed
from monitoring.selectors import MAX_OFFSET, action_log_stats, action_logs, count_rows
from monitoring.serializers import ActionLogSerializer

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
COUNT = {"type": "integer"}
STATS_SCHEMA = {
    "type": "object",
    "description": "Present with ?stats=1. `*_estimated` is true where PostgreSQL's statistics stand in for a count.",
    "properties": {
        "total": COUNT, "total_estimated": {"type": "boolean"},
        "filtered": COUNT, "filtered_estimated": {"type": "boolean"},
        "by_status": {"type": "object", "properties": {"success": COUNT, "failed": COUNT, "in_progress": COUNT}},
    },
}


class ActionLogPagination(LimitOffsetPagination):
    """limit/offset pages whose count the view may hand over (already counted, or estimated).

    Unlike DRF's default, a malformed limit or offset is a 400 rather than silently ignored.
    """

    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def paginate_queryset(self, queryset, request, view=None, *, count: int, count_estimated: bool = False,
                          stats: dict | None = None):
        self.known_count, self.count_estimated, self.stats = count, count_estimated, stats
        return super().paginate_queryset(queryset, request, view)

    def get_count(self, queryset):
        return self.known_count

    def get_limit(self, request):
        return query_int(request, self.limit_query_param, default=self.default_limit, minimum=1, maximum=self.max_limit)

    def get_offset(self, request):
        return query_int(request, self.offset_query_param, default=0, minimum=0, maximum=MAX_OFFSET)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["count_estimated"] = self.count_estimated
        if self.stats is not None:
            response.data["stats"] = self.stats
        return response

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count_estimated"] = {"type": "boolean"}
        response["properties"]["stats"] = STATS_SCHEMA
        return response


@extend_schema(tags=["monitoring"])
class ActionLogViewSet(viewsets.ReadOnlyModelViewSet):
    """The action log, newest first. `?stats=1` adds counts: all rows, matching rows, matching rows per status."""

    serializer_class = ActionLogSerializer
    pagination_class = ActionLogPagination
    filter_backends = [DjangoFilterBackend, StableOrderingFilter]
    filterset_class = ActionLogFilter
    ordering_fields = ["created_at", "duration_ms"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return action_logs()

    @extend_schema(parameters=[OpenApiParameter("stats", OpenApiTypes.BOOL, description="Add the `stats` counts")])
    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        narrowed = is_narrowed(request.query_params)
        stats = None
        if query_bool(request, "stats"):
            stats = action_log_stats(queryset, narrowed=narrowed, status=request.query_params.get("status"))
        if stats is not None:
            count, estimated = stats["filtered"], stats["filtered_estimated"]
        else:
            count, estimated = count_rows(queryset, narrowed=narrowed)
        page = self.paginator.paginate_queryset(
            queryset, request, view=self, count=count, count_estimated=estimated, stats=stats
        )
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


def register(router):
    router.register("action-logs", ActionLogViewSet, basename="action-log")
