"""Catalog API serializers. Rows are named by code, in the body as in the URL."""

from collections import defaultdict

from django.core.exceptions import MultipleObjectsReturned, ObjectDoesNotExist, ValidationError
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from catalog import runtime_settings, services
from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, RuntimeSetting, Zone
from monitoring.models import ActionType

# PostgreSQL `integer` columns hold at most this; a larger number is a 400, not a database error.
MAX_DB_INT = 2_147_483_647
# How many zones one PUT may name: far above any provider's zone count, low enough to bound the work.
MAX_ZONES_PER_TYPE = 200
# Codes appear in URLs as one path segment; model codes are Hugging Face ids (`org/name`) or plain names.
URL_SEGMENT = RegexValidator(r"^[^/\s]+$", "A code is one URL segment: no slash, no spaces.")
MODEL_CODE = RegexValidator(
    r"^\w[\w.\-]*(/\w[\w.\-]*)?$", "Use a Hugging Face id (org/name) or a plain name: letters, digits, . _ -"
)


def contains_nul(value) -> bool:
    """Whether a JSON value holds a NUL character anywhere (PostgreSQL text and jsonb cannot store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


class CodeRelatedField(serializers.SlugRelatedField):
    """A foreign key written and read as the row's code.

    Codes are unique within their provider only: `provider_lookup` names the path to the provider code, and a
    `provider` given beside the field in the same body narrows the match when several rows share the code.
    """

    default_error_messages = {
        **serializers.SlugRelatedField.default_error_messages,
        "ambiguous": "Several rows have code {value}: add `provider` (a provider code) to choose one.",
    }

    def __init__(self, *, provider_lookup: str | None = None, **kwargs):
        kwargs.setdefault("slug_field", "code")
        self.provider_lookup = provider_lookup
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or "\x00" in data:
            self.fail("invalid")
        queryset = self.get_queryset()
        provider = self._given_provider()
        if self.provider_lookup and provider:
            queryset = queryset.filter(**{self.provider_lookup: provider})
        try:
            return queryset.get(**{self.slug_field: data})
        except ObjectDoesNotExist:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        except MultipleObjectsReturned:
            self.fail("ambiguous", value=data)

    def _given_provider(self) -> str | None:
        body = getattr(self.parent, "initial_data", None)
        provider = body.get("provider") if isinstance(body, dict) else None
        return provider if isinstance(provider, str) else None


class CatalogSerializer(serializers.ModelSerializer):
    """Model serializer that bounds every integer to what the database stores."""

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, serializers.IntegerField):
            kwargs["max_value"] = min(kwargs.get("max_value", MAX_DB_INT), MAX_DB_INT)
        return field_class, kwargs


class ProviderSerializer(CatalogSerializer):
    class Meta:
        model = Provider
        fields = ["code", "name", "adapter", "description", "active"]


class RegionSerializer(CatalogSerializer):
    provider = CodeRelatedField(queryset=Provider.objects.all())
    zones = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)

    class Meta:
        model = Region
        fields = ["code", "name", "provider", "active", "zones"]

    def validate(self, attrs):
        if self.instance is not None and "provider" in attrs:
            services.validate_region_provider(self.instance, provider=attrs["provider"])
        return attrs


class ZoneSerializer(CatalogSerializer):
    region = CodeRelatedField(queryset=Region.objects.select_related("provider"), provider_lookup="provider__code")
    # Read from Zone.provider (its region's provider); on input it only picks the region when codes are shared.
    provider = CodeRelatedField(
        queryset=Provider.objects.all(),
        required=False,
        help_text="Provider of the region; needed only when several providers have a region with that code.",
    )

    class Meta:
        model = Zone
        fields = ["code", "name", "region", "provider", "active"]

    def validate(self, attrs):
        provider = attrs.pop("provider", None)
        region = attrs.get("region", self.instance.region if self.instance else None)
        if provider is not None and region is not None and region.provider_id != provider.pk:
            raise serializers.ValidationError({"provider": f"region {region.code} belongs to {region.provider.code}"})
        if self.instance is not None and "region" in attrs:
            services.validate_zone_region(self.instance, region=attrs["region"])
        return attrs


class ZoneOfferSerializer(serializers.ModelSerializer):
    """One zone an instance type is offered in, with the provider's last known availability there."""

    zone = serializers.CharField(source="zone.code", read_only=True)
    region = serializers.CharField(source="zone.region.code", read_only=True)

    class Meta:
        model = InstanceTypeZone
        fields = ["zone", "region", "availability", "updated_at"]
        read_only_fields = fields


class InstanceTypeSerializer(CatalogSerializer):
    provider = CodeRelatedField(queryset=Provider.objects.all())
    total_vram_gb = serializers.IntegerField(read_only=True, help_text="GPUs x VRAM per GPU")
    zones = ZoneOfferSerializer(source="zone_offers", many=True, read_only=True)

    class Meta:
        model = InstanceType
        fields = [
            "code",
            "name",
            "provider",
            "gpu_model",
            "compute_capability",
            "gpu_count",
            "vram_per_gpu_gb",
            "total_vram_gb",
            "vcpu",
            "ram_gb",
            "bandwidth_mbps",
            "cost_per_hour",
            "root_volumes",
            "engine_image",
            "allocation_params",
            "active",
            "zones",
        ]
        extra_kwargs = {"code": {"validators": [URL_SEGMENT]}}

    def validate_allocation_params(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object (provider-specific allocation parameters).")
        if contains_nul(value):
            raise serializers.ValidationError("Must not contain NUL characters.")
        return value

    def validate(self, attrs):
        if self.instance is not None and "provider" in attrs:
            services.validate_instance_type_provider(self.instance, provider=attrs["provider"])
        return attrs


class InstanceTypeZonesSerializer(serializers.Serializer):
    """The zones an instance type is offered in."""

    zones = ZoneOfferSerializer(many=True, read_only=True)


class InstanceTypeZonesInputSerializer(serializers.Serializer):
    """The whole set of zones (codes) an instance type is to be offered in; it replaces the current set."""

    zones = serializers.ListField(
        child=serializers.CharField(max_length=50), allow_empty=True, max_length=MAX_ZONES_PER_TYPE
    )

    def validate_zones(self, codes: list[str]) -> list[Zone]:
        """Zone codes -> zones, preferring the instance type's provider when several zones share a code.

        A zone of another provider is passed on: the service refuses it and says why.
        """
        instance_type: InstanceType = self.context["instance_type"]
        by_code: dict[str, list[Zone]] = defaultdict(list)
        for zone in Zone.objects.filter(code__in=codes).select_related("region__provider"):
            by_code[zone.code].append(zone)
        unknown = sorted(set(codes) - by_code.keys())
        if unknown:
            raise serializers.ValidationError(f"Unknown zone: {', '.join(unknown)}.")
        zones = []
        for code in dict.fromkeys(codes):
            own = [zone for zone in by_code[code] if zone.region.provider_id == instance_type.provider_id]
            if len(own) > 1:
                raise serializers.ValidationError(
                    f"{code} names zones in several regions of {instance_type.provider.code}; rename one of them."
                )
            zones.append(own[0] if own else by_code[code][0])
        return zones


class LlmModelSerializer(CatalogSerializer):
    class Meta:
        model = LlmModel
        fields = [
            "code",
            "name",
            "task",
            "vram_required_gb",
            "context_length",
            "parameters_b",
            "weights_gb",
            "layers",
            "attention_heads",
            "kv_heads",
            "head_size",
            "gated",
            "mock_only",
            "allow_simulator",
            "active",
        ]
        # Listing validators replaces DRF's defaults, so the uniqueness check is named again.
        extra_kwargs = {"code": {"validators": [MODEL_CODE, UniqueValidator(queryset=LlmModel.objects.all())]}}


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]})
class SettingValueField(serializers.Field):
    """A runtime setting's value: text, a number or a boolean on input; stored and shown as text."""

    default_error_messages = {
        "invalid": "Must be a string, a number or a boolean.",
        "too_long": "At most {max_length} characters.",
    }
    max_length = RuntimeSetting._meta.get_field("value").max_length

    def to_internal_value(self, data):
        if not isinstance(data, (str, int, float, bool)) or (isinstance(data, str) and "\x00" in data):
            self.fail("invalid")
        if len(str(data)) > self.max_length:
            self.fail("too_long", max_length=self.max_length)
        return data

    def to_representation(self, value):
        return value


def typed_setting(raw, value_type: str):
    """`raw` as the JSON its type says (README, "API conventions"): an int as a number, a bool as a boolean;
    text that does not parse (edited by hand in the database) stays text."""
    if raw is None:
        return None
    try:
        return runtime_settings.parse_setting_value(value_type=value_type, raw=raw)
    except ValidationError:
        return raw


class RuntimeSettingSerializer(serializers.ModelSerializer):
    """Only `value` can change through the API; the service checks it against the type and bounds.
    `value`, `default` and the bounds are shown typed: integers as numbers, booleans as booleans."""

    value = SettingValueField()
    default = SettingValueField(read_only=True)

    class Meta:
        model = RuntimeSetting
        fields = ["key", "value", "value_type", "default", "min_value", "max_value", "description", "updated_at"]
        read_only_fields = ["key", "value_type", "default", "min_value", "max_value", "description", "updated_at"]

    def update(self, instance, validated_data):
        if "value" not in validated_data:
            return instance
        return runtime_settings.update_setting(instance, value=validated_data["value"])

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for name in ("value", "default"):
            data[name] = typed_setting(data[name], instance.value_type)
        if instance.value_type == RuntimeSetting.ValueType.INT:
            for name in ("min_value", "max_value"):
                if data[name] is not None:
                    data[name] = int(data[name])
        return data


class ActionTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ActionType
        fields = ["code", "label", "icon", "color", "category", "active"]
        read_only_fields = fields


# --- Launch plans ------------------------------------------------------------------------------


class LaunchPlanQuerySerializer(serializers.Serializer):
    """`?instance_type=<code>&model=<code>` (and `provider=` when several providers share the type code)."""

    instance_type = serializers.CharField(max_length=60)
    model = serializers.CharField(max_length=200)
    provider = serializers.CharField(max_length=50, required=False)

    def validate(self, attrs):
        if any("\x00" in value for value in attrs.values()):
            raise serializers.ValidationError("Codes must not contain NUL characters.")
        types = InstanceType.objects.select_related("provider").filter(code=attrs["instance_type"])
        if "provider" in attrs:
            types = types.filter(provider__code=attrs["provider"])
        found = list(types[:2])
        if not found:
            raise serializers.ValidationError({"instance_type": f"Unknown instance type {attrs['instance_type']}."})
        if len(found) > 1:
            raise serializers.ValidationError(
                {"provider": f"Several providers have instance type {attrs['instance_type']}: add ?provider=."}
            )
        model = LlmModel.objects.filter(code=attrs["model"]).first()
        if model is None:
            raise serializers.ValidationError({"model": f"Unknown model {attrs['model']}."})
        return {"instance_type": found[0], "model": model}


class RootVolumeSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["sbs_volume", "l_ssd"])
    size_gb = serializers.IntegerField()


class LaunchPlanSerializer(serializers.Serializer):
    """A launch plan, or a refusal (`fits` false, `reason` set, the other fields empty)."""

    fits = serializers.BooleanField()
    reason = serializers.CharField()
    image = serializers.CharField()
    tensor_parallel_size = serializers.IntegerField()
    max_model_len = serializers.IntegerField()
    gpu_memory_utilization = serializers.FloatField()
    root_volume = RootVolumeSerializer(allow_null=True)
    secret_env = serializers.ListField(child=serializers.CharField(), help_text="Names only, never values")
    args = serializers.ListField(child=serializers.CharField(), help_text="`vllm serve` arguments, model first")

    def to_representation(self, plan):
        if plan.fits:
            return super().to_representation(plan)
        return {
            "fits": False, "reason": plan.reason, "image": "", "tensor_parallel_size": 0, "max_model_len": 0,
            "gpu_memory_utilization": 0.0, "root_volume": None, "secret_env": [], "args": [],
        }
