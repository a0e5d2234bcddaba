"""The Mock cloud console's REST API, staff only (README, "The Mock cloud"): `/api/mock/faults/` to list, arm
and disarm faults, `/api/mock/servers/` to see the Mock's servers and kill an agent, crash an engine or delete
a server. Every write is audited (catalog/mock_cloud.py)."""

import uuid

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from catalog.mock_cloud import arm_audited_fault, disarm_audited_fault, operate_audited
from catalog.mock_cloud_serializers import MockFaultSerializer, MockServerSerializer
from inventiv.api_errors import ApiError, ErrorSerializer, error_body
from monitoring.audit import Source
from providers.mock import MockOperationError
from providers.mock_console import CRASH_ENGINE, DELETE_SERVER, KILL_AGENT, view_server
from providers.models import MockFault, MockServer

# The error codes these endpoints answer with (README, "API conventions" and "The Mock cloud"): bad input,
# a body that is not JSON, and an operation the server's state does not allow.
INVALID_INPUT = ApiError.INVALID
OPERATION_REFUSED = ApiError.INVALID_STATUS
ERROR = ErrorSerializer
REFUSED = OpenApiResponse(ERROR, description="The operation does not apply to the server now (deleted, not "
                                             "powered on, or nothing of that kind runs on it)")


def invalid_input(errors: dict) -> Response:
    fields = {name: " ".join(str(reason) for reason in (reasons if isinstance(reasons, list) else [reasons]))
              for name, reasons in errors.items()}
    return Response(error_body(INVALID_INPUT, "The fault was not armed: see fields.", fields),
                    status=status.HTTP_400_BAD_REQUEST)


class MockFaultViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Faults the Mock cloud produces on its next matching calls; POST arms one, DELETE disarms it."""

    queryset = MockFault.objects.order_by("id")
    serializer_class = MockFaultSerializer
    permission_classes = [IsAdminUser]
    filter_backends = []
    lookup_value_regex = r"[0-9]+"

    @extend_schema(responses={201: MockFaultSerializer, 400: OpenApiResponse(ERROR, description="Bad input")})
    def create(self, request, *args, **kwargs):
        try:
            data = request.data
        except ParseError as exc:
            return Response(error_body(ApiError.PARSE_ERROR, f"The body is not valid JSON: {exc.detail}"),
                            status=status.HTTP_400_BAD_REQUEST)
        serializer = self.get_serializer(data=data)
        if not serializer.is_valid():
            return invalid_input(serializer.errors)
        fault = arm_audited_fault(user=request.user, source=Source.API, **serializer.validated_data)
        return Response(self.get_serializer(fault).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        disarm_audited_fault(instance, user=self.request.user, source=Source.API)


INCLUDE_DELETED = OpenApiParameter("include_deleted", bool, description="Also list deleted servers (default: no)")


class MockServerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The Mock cloud's servers, newest first, and what an operator can do to one."""

    serializer_class = MockServerSerializer
    permission_classes = [IsAdminUser]
    filter_backends = []
    lookup_value_regex = r"[0-9a-fA-F-]{36}"

    def get_queryset(self):
        rows = MockServer.objects.order_by("-created_at", "-id")
        if self.request.query_params.get("include_deleted", "").lower() not in ("1", "true", "yes"):
            rows = rows.filter(deleted_at__isnull=True)
        return rows

    def get_object(self):
        server = MockServer.objects.filter(pk=self.kwargs["pk"]).first() if _is_uuid(self.kwargs["pk"]) else None
        if server is None:
            raise Http404
        return server

    @extend_schema(parameters=[INCLUDE_DELETED])
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer([view_server(row) for row in page], many=True).data)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.get_serializer(view_server(self.get_object())).data)

    def _operate(self, request, operation: str) -> Response:
        try:
            view = operate_audited(self.get_object(), operation, user=request.user, source=Source.API)
        except MockOperationError as exc:
            return Response(error_body(OPERATION_REFUSED, str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(view).data)

    @extend_schema(request=None, responses={200: MockServerSerializer, 409: REFUSED},
                   description="Kill the worker agent (SIGKILL): the machine stays running, its heartbeats stop, and "
                               "the instance fails with HEARTBEAT_LOST after heartbeat_lost_grace_s.")
    @action(detail=True, methods=["post"], url_path="kill-agent")
    def kill_agent(self, request, pk=None):
        return self._operate(request, KILL_AGENT)

    @extend_schema(request=None, responses={200: MockServerSerializer, 409: REFUSED},
                   description="Kill the engine (SIGKILL), as a crash would: its agent restarts it.")
    @action(detail=True, methods=["post"], url_path="crash-engine")
    def crash_engine(self, request, pk=None):
        return self._operate(request, CRASH_ENGINE)

    @extend_schema(request=None, responses={200: MockServerSerializer, 409: REFUSED},
                   description="Delete the server as from the cloud's console: it is gone at once and what ran on "
                               "it stops; the watchdog then fails its instance with PROVIDER_DELETED.")
    @action(detail=True, methods=["post"], url_path="delete")
    def delete_server(self, request, pk=None):
        return self._operate(request, DELETE_SERVER)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def register(router):
    """Register the Mock console's viewsets on the project router."""
    router.register("mock/faults", MockFaultViewSet, basename="mock-fault")
    router.register("mock/servers", MockServerViewSet, basename="mock-server")
