"""The action-log API: filtered, ordered listings in the API's one pagination, with optional counts."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets

from inventiv.api_params import StableOrderingFilter, query_bool
from inventiv.pagination import LimitOffsetPagination
from monitoring.filters import ActionLogFilter, is_narrowed
from monitoring.selectors import MAX_OFFSET, action_log_stats, action_logs, count_rows
from monitoring.serializers import ActionLogSerializer

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
    """The API's one pagination, with a count the view hands over (exact, or estimated above
    monitoring.selectors.ESTIMATE_ABOVE rows) and, with ?stats=1, the `stats` counts beside the page."""

    max_offset = MAX_OFFSET

    def paginate_queryset(self, queryset, request, view=None, *, count: int | None = None, stats: dict | None = None):
        self.stats = stats
        return super().paginate_queryset(queryset, request, view, count=count)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        if self.stats is not None:
            response.data["stats"] = self.stats
        return response

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count"]["description"] = (
            "Exact up to 100,000 matching rows; above, PostgreSQL's estimate (`?stats=1` says which)")
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
        count = stats["filtered"] if stats is not None else count_rows(queryset, narrowed=narrowed)[0]
        page = self.paginator.paginate_queryset(queryset, request, view=self, count=count, stats=stats)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


def register(router):
    router.register("action-logs", ActionLogViewSet, basename="action-log")
