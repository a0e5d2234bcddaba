"""The one DRF router every app registers its viewsets on, and the version endpoint."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from autoscaling.api import register as register_autoscaling
from catalog.api import register as register_catalog
from catalog.mock_cloud_api import register as register_mock_cloud
from finops.api import register as register_finops
from instances.api import register as register_instances
from monitoring.api import register as register_monitoring
from router.api import register as register_router

router = DefaultRouter()
register_catalog(router)
register_monitoring(router)
register_instances(router)
register_router(router)
register_finops(router)
register_autoscaling(router)
register_mock_cloud(router)


@extend_schema(responses=inline_serializer("Version", {"version": serializers.CharField()}))
@api_view(["GET"])
@permission_classes([AllowAny])
def version(request):
    return Response({"version": settings.VERSION})
