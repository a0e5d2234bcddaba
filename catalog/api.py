"""Catalog REST API: providers, regions, zones, instance types, LLM models, runtime settings, action types.

Rows are addressed by code. Codes are unique within their provider only: when a code names several rows,
the lookup answers 400 and asks for `?provider=`.
"""

from django.db import transaction
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.response import Response

from catalog import filters, serializers, services
from catalog.models import LlmModel, Provider, Region, RuntimeSetting, Zone
from catalog.selectors import instance_types_with_offers, with_zone_offers
from inventiv.api_params import StableOrderingFilter
from inventiv.api_schema import OneObjectSchema
from monitoring.audit import AuditedViewSetMixin, Source, Verb, action_type, record_change
from monitoring.models import ActionType

# Any code that fits one URL segment (dots included: model and type names have them).
ONE_SEGMENT = r"[^/]+"
# Hugging Face ids have one slash (`Qwen/Qwen2.5-7B-Instruct`). The second segment must not be the name
# of an extra action, or `/models/mock-echo/compatible-instance-types/` would be read as a model code.
MODEL_CODE_REGEX = r"[^/]+(?:/(?!compatible-instance-types/$)[^/]+)?"

PROVIDER_PARAM = OpenApiParameter(
    "provider", OpenApiTypes.STR, description="Provider code; needed only when several providers share the code"
)
REGION_PARAM = OpenApiParameter("region", OpenApiTypes.STR, description="Region code, to choose among shared codes")
DETAIL_ACTIONS = ("retrieve", "update", "partial_update", "destroy")


def scoped_by(*parameters: OpenApiParameter, actions=DETAIL_ACTIONS):
    """Document the query parameters that disambiguate a code on every detail operation."""
    return extend_schema_view(**{name: extend_schema(parameters=list(parameters)) for name in actions})


class CodeLookupMixin:
    """Address rows by code; `lookup_scope` maps query parameters that narrow a shared code to ORM paths."""

    lookup_field = "code"
    lookup_value_regex = ONE_SEGMENT
    lookup_scope: dict[str, str] = {}
    filter_backends = [DjangoFilterBackend, SearchFilter, StableOrderingFilter]

    def get_object(self):
        code = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        if "\x00" in code:
            raise Http404  # no code holds NUL, and PostgreSQL refuses it in a query
        queryset = self.get_queryset().filter(**{self.lookup_field: code})
        for param, path in self.lookup_scope.items():
            value = self.request.query_params.get(param)
            if value is not None:
                if "\x00" in value:
                    raise ValidationError({param: "Must not contain NUL characters."})
                queryset = queryset.filter(**{path: value})
        matches = list(queryset[:2])
        if not matches:
            raise Http404
        if len(matches) > 1:
            names = " or ".join(f"?{param}=" for param in self.lookup_scope)
            kind = queryset.model._meta.verbose_name_plural
            # The first scope parameter is the one that tells the rows apart (README, "API conventions").
            raise ValidationError({next(iter(self.lookup_scope), self.lookup_field): f"Several {kind} have code {code}: add {names} "
                                                                   "to choose one."})
        self.check_object_permissions(self.request, matches[0])
        return matches[0]

    def paged(self, rows, serializer_class) -> Response:
        """A related list in the API's one pagination (README, "API conventions")."""
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(serializer_class(page, many=True).data)


class ProviderViewSet(AuditedViewSetMixin, CodeLookupMixin, viewsets.ModelViewSet):
    audit_area = "CATALOG"
    queryset = Provider.objects.all()
    serializer_class = serializers.ProviderSerializer
    filterset_class = filters.ProviderFilter
    search_fields = ["code", "name", "description"]
    ordering_fields = ["code", "name", "adapter"]


@scoped_by(PROVIDER_PARAM)
class RegionViewSet(AuditedViewSetMixin, CodeLookupMixin, viewsets.ModelViewSet):
    audit_area = "CATALOG"
    queryset = Region.objects.select_related("provider").prefetch_related("zones")
    serializer_class = serializers.RegionSerializer
    filterset_class = filters.RegionFilter
    search_fields = ["code", "name", "provider__code"]
    ordering_fields = ["code", "name", "provider__code"]
    lookup_scope = {"provider": "provider__code"}


@scoped_by(PROVIDER_PARAM, REGION_PARAM, actions=(*DETAIL_ACTIONS, "instance_types"))
class ZoneViewSet(AuditedViewSetMixin, CodeLookupMixin, viewsets.ModelViewSet):
    audit_area = "CATALOG"
    queryset = Zone.objects.select_related("region__provider")
    serializer_class = serializers.ZoneSerializer
    filterset_class = filters.ZoneFilter
    search_fields = ["code", "name", "region__code"]
    ordering_fields = ["code", "name", "region__code", "region__provider__code"]
    lookup_scope = {"provider": "region__provider__code", "region": "region__code"}

    @extend_schema(responses=serializers.InstanceTypeSerializer(many=True))
    @action(detail=True, url_path="instance-types", filter_backends=[])
    def instance_types(self, request, code=None):
        """The instance types offered in this zone."""
        types = instance_types_with_offers().filter(zone_offers__zone=self.get_object()).order_by("code", "pk")
        return self.paged(types, serializers.InstanceTypeSerializer)


@scoped_by(PROVIDER_PARAM, actions=(*DETAIL_ACTIONS, "zones", "compatible_models"))
class InstanceTypeViewSet(AuditedViewSetMixin, CodeLookupMixin, viewsets.ModelViewSet):
    audit_area = "CATALOG"
    queryset = instance_types_with_offers()
    serializer_class = serializers.InstanceTypeSerializer
    filterset_class = filters.InstanceTypeFilter
    search_fields = ["code", "name", "gpu_model", "provider__code"]
    ordering_fields = [
        "code",
        "cost_per_hour",
        "gpu_count",
        "vram_per_gpu_gb",
        "total_vram",
        "vcpu",
        "ram_gb",
        "gpu_model",
        "provider__code",
    ]
    lookup_scope = {"provider": "provider__code"}

    @extend_schema(
        methods=["GET"], request=None, responses=serializers.InstanceTypeZonesSerializer, summary="Zones offered in"
    )
    @extend_schema(
        methods=["PUT"],
        request=serializers.InstanceTypeZonesInputSerializer,
        responses=serializers.InstanceTypeZonesSerializer,
        summary="Replace the zones offered in",
    )
    @action(detail=True, methods=["get", "put"], filter_backends=[], pagination_class=None)  # one object
    def zones(self, request, code=None):
        """The zones this type is offered in; PUT replaces the whole set (zones of its own provider only)."""
        instance_type = self.get_object()
        if request.method == "PUT":
            body = serializers.InstanceTypeZonesInputSerializer(
                data=request.data, context={"instance_type": instance_type}
            )
            body.is_valid(raise_exception=True)
            with transaction.atomic():
                before = {"zones": services.offered_zone_codes(instance_type)}
                services.set_instance_type_zones(instance_type, zones=body.validated_data["zones"])
                record_change(action_type(self.audit_area, Verb.UPDATE), target=instance_type, user=request.user,
                              source=Source.API, before=before,
                              after={"zones": services.offered_zone_codes(instance_type)})
        offers = instance_type.zone_offers.select_related("zone__region").order_by("zone__code")
        return Response(serializers.InstanceTypeZonesSerializer({"zones": offers}).data)

    @extend_schema(responses=serializers.LlmModelSerializer(many=True))
    @action(detail=True, url_path="compatible-models", filter_backends=[])
    def compatible_models(self, request, code=None):
        """The LLM models the launch planner finds a plan for on this type."""
        models = services.compatible_models(self.get_object()).order_by("code", "pk")
        return self.paged(models, serializers.LlmModelSerializer)


class LlmModelViewSet(AuditedViewSetMixin, CodeLookupMixin, viewsets.ModelViewSet):
    audit_area = "CATALOG"
    queryset = LlmModel.objects.all()
    serializer_class = serializers.LlmModelSerializer
    filterset_class = filters.LlmModelFilter
    search_fields = ["code", "name"]
    ordering_fields = ["code", "name", "vram_required_gb", "context_length"]
    lookup_value_regex = MODEL_CODE_REGEX

    @extend_schema(responses=serializers.InstanceTypeSerializer(many=True))
    @action(detail=True, url_path="compatible-instance-types", filter_backends=[])
    def compatible_instance_types(self, request, code=None):
        """The instance types that can serve this model, cheapest first within each provider."""
        types = with_zone_offers(services.compatible_instance_types(self.get_object()))
        return self.paged(types, serializers.InstanceTypeSerializer)


@extend_schema_view(
    list=extend_schema(
        parameters=[serializers.LaunchPlanQuerySerializer], responses=serializers.LaunchPlanSerializer,
        summary="The launch plan of a model on an instance type",
    )
)
class LaunchPlanViewSet(viewsets.ViewSet):
    """What a machine of `instance_type` would run to serve `model`, or why it cannot (README, "Launch plans")."""

    schema = OneObjectSchema()

    def list(self, request):
        query = serializers.LaunchPlanQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        plan = services.launch_plan(query.validated_data["model"], query.validated_data["instance_type"])
        return Response(serializers.LaunchPlanSerializer(plan).data)


class RuntimeSettingViewSet(
    AuditedViewSetMixin, CodeLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Typed settings operators change without a deploy; only `value` is writable."""

    audit_area = "SETTING"

    queryset = RuntimeSetting.objects.all()
    serializer_class = serializers.RuntimeSettingSerializer
    filterset_class = filters.RuntimeSettingFilter
    search_fields = ["key", "description"]
    ordering_fields = ["key", "updated_at"]
    lookup_field = "key"


class ActionTypeViewSet(CodeLookupMixin, viewsets.ReadOnlyModelViewSet):
    """Everything Inventiv writes to the action log, with its label, icon, colour and category."""

    queryset = ActionType.objects.all()
    serializer_class = serializers.ActionTypeSerializer
    filterset_class = filters.ActionTypeFilter
    search_fields = ["code", "label"]
    ordering_fields = ["code", "category"]


def register(router):
    """Register the catalog viewsets on the project router."""
    router.register("providers", ProviderViewSet, basename="provider")
    router.register("regions", RegionViewSet, basename="region")
    router.register("zones", ZoneViewSet, basename="zone")
    router.register("instance-types", InstanceTypeViewSet, basename="instance-type")
    router.register("models", LlmModelViewSet, basename="llm-model")
    router.register("settings", RuntimeSettingViewSet, basename="runtime-setting")
    router.register("launch-plan", LaunchPlanViewSet, basename="launch-plan")
    router.register("action-types", ActionTypeViewSet, basename="action-type")
