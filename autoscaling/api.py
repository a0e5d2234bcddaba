"""The pools API: define, inspect, change and delete autoscaling pools, and read their history.

Pools are addressed by name. Anyone signed in reads; staff change. A refused definition answers 400 with
the field and the reason, and changes nothing; deleting a pool that still has live instances answers 409.
"""

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from autoscaling import pools, selectors
from autoscaling.models import Pool
from autoscaling.serializers import (
    PoolInputSerializer,
    PoolSampleSerializer,
    PoolSerializer,
    PoolUpdateSerializer,
    SamplesQuerySerializer,
)
from instances.models import Instance
from instances.status import LIVE
from inventiv.api_errors import ApiError, ErrorSerializer, error_response

def with_members(pools: QuerySet[Pool]) -> QuerySet[Pool]:
    """`pools`, each with `live_members`: its live instances, oldest first (one query for all)."""
    members = Instance.objects.filter(status__in=LIVE).only("id", "status", "pool_id").order_by("created_at", "id")
    return pools.prefetch_related(Prefetch("instances", queryset=members, to_attr="live_members"))


IN_USE = OpenApiResponse(ErrorSerializer, description="in_use: the pool still has live instances, or a tick is deciding for it")


@extend_schema(tags=["autoscaling"])
@extend_schema_view(
    create=extend_schema(request=PoolInputSerializer, responses={201: PoolSerializer}),
    partial_update=extend_schema(request=PoolUpdateSerializer, responses={200: PoolSerializer}),
    destroy=extend_schema(responses={204: None, 409: IN_USE}),
)
class PoolViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Pools: one model served on an ordered list of (instance type, zone) choices, sized by the autoscaler."""

    serializer_class = PoolSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    filter_backends = []
    # PATCH changes what it names; there is no PUT (a pool's definition is never sent whole again).
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return with_members(selectors.pool_rows())

    def create(self, request, *args, **kwargs):
        """Create a pool with its ordered choices. Omitted settings take their defaults."""
        body = PoolInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        pool = pools.create_pool(**body.validated_data, actor=request.user)
        return Response(self._read(pool), status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        """Change the settings sent; `choices`, when sent, replaces the whole list in its order."""
        pool = self.get_object()
        body = PoolUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        pool = pools.update_pool(pool, **body.validated_data, actor=request.user)
        return Response(self._read(pool))

    def destroy(self, request, *args, **kwargs):
        """Delete the pool, its choices and history. Refused (409) while it has live instances."""
        try:
            pools.delete_pool(self.get_object(), actor=request.user)
        except pools.PoolInUse as exc:
            return error_response(ApiError.IN_USE, str(exc), status_code=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[SamplesQuerySerializer], responses=PoolSampleSerializer(many=True))
    @action(detail=True)
    def samples(self, request, name=None):
        """The pool's samples (one per autoscaler tick) of the last `minutes`, oldest first, paged."""
        query = SamplesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = selectors.pool_samples(self.get_object(), minutes=query.validated_data["minutes"])
        return self.get_paginated_response(PoolSampleSerializer(self.paginate_queryset(rows), many=True).data)

    def _read(self, pool) -> dict:
        return PoolSerializer(with_members(selectors.pool_rows()).get(pk=pool.pk)).data


def register(router):
    router.register("pools", PoolViewSet, basename="pool")
