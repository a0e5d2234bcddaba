"""The instances API: request, list, inspect, terminate, archive and reinstall GPU instances; status counts."""

import django_filters
from django.conf import settings
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.runtime_settings import get_setting
from instances import draining, hosts, readiness, requests, termination
from instances.lifecycle import InvalidTransition
from instances.models import Instance
from instances.selectors import (
    active_instances,
    archived_instances,
    instances,
    status_counts,
    timeline,
    with_heartbeats,
)
from instances.serializers import (
    InstanceAcceptedSerializer,
    InstanceCreateSerializer,
    InstanceDetailSerializer,
    InstanceSerializer,
    DrainSerializer,
    HostCreateSerializer,
    HostRegisteredSerializer,
    StatusCountsSerializer,
    TerminateSerializer,
)
from instances.status import ErrorCode, Status
from instances.sweeps import TERMINATOR_GRACE_S
from inventiv.api_errors import ApiError, ErrorSerializer, error_body
from inventiv.api_params import StableOrderingFilter, query_bool
from inventiv.api_schema import OneObjectSchema
from inventiv.enqueue import EnqueueReport, watch_enqueues
from monitoring.audit import Source

CONFLICT = OpenApiResponse(ErrorSerializer, description="invalid_status: the instance's status does not allow this "
                           "(the message says why)")
# The fields a request must name (MISSING_PARAMS names those it lacks).
PLACEMENT = ("provider", "zone", "instance_type")
# The field a rejected request's error code blames (README, "API conventions").
REJECTED_FIELDS = {
    ErrorCode.INVALID_PROVIDER: "provider",
    ErrorCode.INVALID_ZONE: "zone", ErrorCode.INACTIVE_ZONE: "zone",
    ErrorCode.INVALID_INSTANCE_TYPE: "instance_type", ErrorCode.INACTIVE_INSTANCE_TYPE: "instance_type",
    ErrorCode.INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE: "instance_type",
    ErrorCode.MISSING_MODEL: "model", ErrorCode.INVALID_MODEL: "model", ErrorCode.INCOMPATIBLE_MODEL_INSTANCE: "model",
}


class InstanceFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, help_text="One or several, repeated")
    provider = django_filters.CharFilter(field_name="provider__code")
    zone = django_filters.CharFilter(field_name="zone__code")
    instance_type = django_filters.CharFilter(field_name="instance_type__code")
    model = django_filters.CharFilter(field_name="model__code")
    pool = django_filters.NumberFilter(field_name="pool_id", help_text="Pool id: the members of one pool")

    class Meta:
        model = Instance
        fields = ["status", "provider", "zone", "instance_type", "model", "pool"]


def left_to_sweeps(action: str) -> str:
    """Which beat sweep finishes accepted work whose task the queue could not take, and when (README,
    "The instance lifecycle"). Beat needs the queue too: the sweeps run once it is back."""
    period = settings.SWEEP_PERIOD_S
    return {
        "create": f"the lost-provisions sweep re-queues the provision {get_setting('provision_requeue_after_s')} s "
                  "after the request",
        "terminate": f"the terminator sweep deletes the server {TERMINATOR_GRACE_S} s after the request",
        "drain": f"the drains sweep checks the drain every {period} s",
        "reinstall": f"the startup-health sweep checks the machine every {period} s",
    }[action]


def accepted(instance: Instance, enqueues: EnqueueReport, *, action: str) -> Response:
    """202 with the instance, saying whether its task was enqueued or a sweep will finish the work."""
    with_heartbeats([instance])
    instance.enqueued = enqueues.all_sent
    instance.note = "" if enqueues.all_sent else (
        f"Saved, but the task queue is unreachable: {left_to_sweeps(action)}, once the queue is back. "
        "Do not ask again."
    )
    return Response(InstanceAcceptedSerializer(instance).data, status=status.HTTP_202_ACCEPTED)


def conflict(instance: Instance, before: str, *, rule: str) -> Response:
    """409 invalid_status: the instance's status does not allow the action (README, "API conventions")."""
    body = error_body(ApiError.INVALID_STATUS, f"Instance {instance.pk} is {before}: {rule}")
    body["error"]["instance"] = str(instance.pk)
    return Response(body, status=status.HTTP_409_CONFLICT)


def rejected(instance: Instance) -> Response:
    """400 for a stored `provisioning_failed` request: its ErrorCode, the field at fault, the stored instance."""
    if instance.error_code == ErrorCode.MISSING_PARAMS:
        fields = {name: "Required." for name in PLACEMENT if not str(instance.requested.get(name) or "").strip()}
    else:
        field = REJECTED_FIELDS.get(instance.error_code)
        fields = {field: instance.error_message} if field else None
    body = error_body(instance.error_code, instance.error_message, fields)
    body["error"]["instance"] = str(instance.pk)
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


@extend_schema(tags=["instances"])
class InstanceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """GPU instances. The list holds active (not archived) instances unless `?archived=1`."""

    filter_backends = [DjangoFilterBackend, StableOrderingFilter]
    filterset_class = InstanceFilter
    ordering_fields = ["created_at", "status_changed_at", "status", "cost_per_hour"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if self.action != "list":
            return instances()
        return archived_instances() if query_bool(self.request, "archived") else active_instances()

    def get_serializer_class(self):
        return InstanceDetailSerializer if self.action == "retrieve" else InstanceSerializer

    @extend_schema(parameters=[OpenApiParameter("archived", OpenApiTypes.BOOL, description="List archived instances")])
    def list(self, request, *args, **kwargs):
        page = with_heartbeats(self.paginate_queryset(self.filter_queryset(self.get_queryset())))
        return self.get_paginated_response(InstanceSerializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        with_heartbeats([instance])
        instance.timeline = timeline(instance)
        return Response(InstanceDetailSerializer(instance).data)

    @extend_schema(
        request=InstanceCreateSerializer,
        responses={202: InstanceAcceptedSerializer, 400: ErrorSerializer},
        description="Request a machine. Every request is stored: a rejected one answers 400 with its error code "
        "(INVALID_ZONE...), the field at fault and the id of the stored `provisioning_failed` instance "
        "(`error.instance`).",
    )
    def create(self, request, *args, **kwargs):
        body = InstanceCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with watch_enqueues() as enqueues:
            instance = requests.request_instance(**body.request_arguments(), actor=request.user)
        if instance.status == Status.PROVISIONING_FAILED:
            return rejected(instance)
        return accepted(instance, enqueues, action="create")

    @extend_schema(request=TerminateSerializer, responses={202: InstanceAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        """Terminate the machine (drained first where the lifecycle says so). Asking twice is harmless."""
        body = TerminateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with watch_enqueues() as enqueues:
            instance = termination.terminate_instance(self.get_object(), reason=body.validated_data["reason"],
                                                      actor=request.user)
        return accepted(instance, enqueues, action="terminate")

    @extend_schema(request=DrainSerializer, responses={202: InstanceAcceptedSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def drain(self, request, pk=None):
        """Stop routing to the machine, let its in-flight requests finish, then terminate it (REQUEST_DRAIN,
        DRAIN_COMPLETE). Asking twice is harmless."""
        body = DrainSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = self.get_object()
        try:
            with watch_enqueues() as enqueues:
                instance = draining.drain_instance(instance, actor=request.user, **body.validated_data)
        except draining.DrainRefused:
            return conflict(instance, instance.status, rule="only a ready instance can be drained.")
        return accepted(instance, enqueues, action="drain")

    @extend_schema(request=None, responses={200: InstanceSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Move a terminated instance (or a rejected request) out of the active list, into the traces."""
        instance = self.get_object()
        try:
            instance = termination.archive_instance(instance, actor=request.user)
        except InvalidTransition as exc:
            return conflict(instance, exc.before, rule="only a terminated instance can be archived; terminate it first.")
        return Response(InstanceSerializer(with_heartbeats([instance])[0]).data)

    @extend_schema(request=None, responses={202: InstanceAcceptedSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def reinstall(self, request, pk=None):
        """Reinstall the worker and the model on the same machine."""
        instance = self.get_object()
        try:
            with watch_enqueues() as enqueues:
                instance = readiness.reinstall_instance(instance, actor=request.user)
        except InvalidTransition as exc:
            return conflict(instance, exc.before, rule="only a machine that is up (ready, or failed after it started) can be reinstalled.")
        return accepted(instance, enqueues, action="reinstall")


@extend_schema(tags=["instances"])
class StatusViewSet(viewsets.ViewSet):
    """How many instances are in each status."""

    schema = OneObjectSchema()

    @extend_schema(responses=StatusCountsSerializer)
    def list(self, request):
        return Response(StatusCountsSerializer(status_counts()).data)


@extend_schema(tags=["instances"])
class HostViewSet(viewsets.GenericViewSet):
    """Register a GPU machine you run yourself (staff): it becomes an instance of the static provider, and
    its agent joins with the one-time join token answered here."""

    serializer_class = HostCreateSerializer

    @extend_schema(request=HostCreateSerializer, responses={201: HostRegisteredSerializer, 400: ErrorSerializer})
    def create(self, request, *args, **kwargs):
        body = HostCreateSerializer(data=request.data)
        if not body.is_valid():
            fields = {name: str(errors[0]) for name, errors in body.errors.items()}
            return Response(error_body(ApiError.INVALID, "The host cannot be registered.", fields), status=400)
        try:
            host = hosts.clean_host(**body.validated_data)
        except hosts.HostInvalid as exc:
            return Response(error_body(ApiError.INVALID, "The host cannot be registered.", exc.fields), status=400)
        registered = hosts.register_host(host, actor=request.user, source=Source.API)
        answer = {"instance": registered.instance, "join_token": registered.join_token,
                  "join_token_expires_at": registered.expires_at, "plan_fits": registered.plan_fits,
                  "plan_reason": registered.plan_reason}
        return Response(HostRegisteredSerializer(answer).data, status=status.HTTP_201_CREATED)


def register(router):
    router.register("hosts", HostViewSet, basename="host")
    router.register("instances", InstanceViewSet, basename="instance")
    router.register("status", StatusViewSet, basename="status")
