"""The router's REST API: API keys (create, list, inspect, revoke) for operators, and request traces."""

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from inventiv.api_params import StableOrderingFilter
from monitoring.audit import Source
from router import services
from router.models import RequestTrace
from router.selectors import api_keys, request_traces
from router.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    RequestTraceSerializer,
)


@extend_schema(tags=["router"])
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Keys for the OpenAI-compatible `/v1/` API. Staff only. Only a prefix of each key is kept in clear."""

    permission_classes = [IsAdminUser]
    serializer_class = ApiKeySerializer

    def get_queryset(self):
        return api_keys()

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request, *args, **kwargs):
        """Create a key. The answer's `key` is the only time the clear key is shown."""
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        api_key, clear = services.create_api_key(**body.validated_data, created_by=request.user, source=Source.API)
        api_key.key = clear
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke the key: the router refuses it within a second. Revoking twice is harmless."""
        api_key = services.revoke_api_key(self.get_object(), actor=request.user, source=Source.API)
        return Response(ApiKeySerializer(api_key).data)


class RequestTraceFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    instance = django_filters.UUIDFilter(field_name="instance_id", help_text="Instance id (UUID)")

    class Meta:
        model = RequestTrace
        fields = ["model", "api_key", "status_code", "outcome", "instance", "stream"]


@extend_schema(tags=["router"])
class RequestTraceViewSet(viewsets.ReadOnlyModelViewSet):
    """One row per request the router answered, newest first (written in batches, up to a second late)."""

    serializer_class = RequestTraceSerializer
    filter_backends = [DjangoFilterBackend, StableOrderingFilter]
    filterset_class = RequestTraceFilter
    ordering_fields = ["created_at", "latency_ms", "ttft_ms"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return request_traces()


def register(router):
    router.register("api-keys", ApiKeyViewSet, basename="api-key")
    router.register("request-traces", RequestTraceViewSet, basename="request-trace")
