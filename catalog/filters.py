"""Query-string filters of the catalog API (django-filter), addressed by codes like the rest of the API."""

import django_filters

from catalog.models import InstanceType, LlmModel, Provider, Region, RuntimeSetting, Zone
from monitoring.models import ActionType

# Filters compare against PostgreSQL `integer` columns: a larger number is a 400, not a database error.
MAX_FILTER_INT = 2_147_483_647
# cost_per_hour is numeric(10, 4): anything above this cannot be stored, so it cannot be a useful bound.
MAX_FILTER_COST = 999_999


def count_filter(field_name: str, lookup_expr: str = "exact") -> django_filters.NumberFilter:
    return django_filters.NumberFilter(
        field_name=field_name, lookup_expr=lookup_expr, min_value=0, max_value=MAX_FILTER_INT, decimal_places=0
    )


class ProviderCodeFilterSet(django_filters.FilterSet):
    provider = django_filters.CharFilter(field_name="provider__code", help_text="Provider code, e.g. scaleway")


class ProviderFilter(django_filters.FilterSet):
    class Meta:
        model = Provider
        fields = ["active", "adapter"]


class RegionFilter(ProviderCodeFilterSet):
    class Meta:
        model = Region
        fields = ["active"]


class ZoneFilter(django_filters.FilterSet):
    provider = django_filters.CharFilter(field_name="region__provider__code", help_text="Provider code")
    region = django_filters.CharFilter(field_name="region__code", help_text="Region code, e.g. fr-par")

    class Meta:
        model = Zone
        fields = ["active"]


class InstanceTypeFilter(ProviderCodeFilterSet):
    region = django_filters.CharFilter(
        field_name="zones__region__code", distinct=True, help_text="Offered in a zone of this region"
    )
    zone = django_filters.CharFilter(field_name="zones__code", distinct=True, help_text="Offered in this zone")
    gpu_count = count_filter("gpu_count")
    min_gpu_count = count_filter("gpu_count", "gte")
    vram_per_gpu_gb = count_filter("vram_per_gpu_gb")
    # total_vram is annotated by the viewset's queryset (GPUs x VRAM per GPU).
    min_vram_gb = count_filter("total_vram", "gte")
    gpu_model = django_filters.CharFilter(field_name="gpu_model", lookup_expr="icontains")
    max_cost_per_hour = django_filters.NumberFilter(
        field_name="cost_per_hour", lookup_expr="lte", min_value=0, max_value=MAX_FILTER_COST, help_text="EUR per hour"
    )

    class Meta:
        model = InstanceType
        fields = ["active"]


class LlmModelFilter(django_filters.FilterSet):
    min_vram_gb = count_filter("vram_required_gb", "gte")
    max_vram_gb = count_filter("vram_required_gb", "lte")

    class Meta:
        model = LlmModel
        fields = ["active", "mock_only", "allow_simulator"]


class RuntimeSettingFilter(django_filters.FilterSet):
    class Meta:
        model = RuntimeSetting
        fields = ["value_type"]


class ActionTypeFilter(django_filters.FilterSet):
    class Meta:
        model = ActionType
        fields = ["category", "active"]
