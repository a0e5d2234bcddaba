"""Pools API serializers: what a client sends (codes, in order) and what it reads back (settings, size, signals).

Input serializers only parse: every rule about a pool lives in `autoscaling.pools`, whose ValidationError
becomes a 400 naming the field (inventiv.api_errors).
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from autoscaling.models import Pool, PoolChoice, PoolSample
from autoscaling.pools import MAX_CHOICES, NAME_MAX_LENGTH, SETTING_BOUNDS, Choice
from autoscaling.selectors import POOL_SIGNALS
from catalog.models import InstanceType, LlmModel, Zone
from catalog.serializers import CodeRelatedField

# How much history one samples answer may cover: a day.
MAX_SAMPLE_MINUTES = 24 * 60
DEFAULT_SAMPLE_MINUTES = 60


def setting_field(name: str) -> serializers.Field:
    """The input field of setting `name`, bounded as `autoscaling.pools` bounds it (so the schema says so)."""
    bounds = SETTING_BOUNDS[name]
    field_class = serializers.IntegerField if bounds.whole else serializers.FloatField
    return field_class(
        min_value=bounds.low, max_value=bounds.high, required=False, allow_null=bounds.optional,
        help_text=Pool._meta.get_field(name).help_text or None,
    )


class PoolChoiceInputSerializer(serializers.Serializer):
    instance_type = serializers.CharField(max_length=100, help_text="Instance type code, e.g. MOCK-GPU-S")
    zone = serializers.CharField(max_length=100, help_text="Zone code, e.g. mock-eu-1")

    def validate(self, attrs) -> Choice:
        """The (type, zone) rows the codes name. Codes are unique within a provider: a pair of the same
        provider wins; a type and a zone of different providers are passed on for the rules to refuse."""
        types = list(InstanceType.objects.select_related("provider").filter(code=attrs["instance_type"]))
        zones = list(Zone.objects.select_related("region__provider").filter(code=attrs["zone"]))
        if not types:
            raise serializers.ValidationError({"instance_type": f"No instance type has code {attrs['instance_type']}."})
        if not zones:
            raise serializers.ValidationError({"zone": f"No zone has code {attrs['zone']}."})
        pairs = [Choice(t, z) for t in types for z in zones if t.provider_id == z.region.provider_id]
        if len(pairs) == 1 or (not pairs and len(types) == len(zones) == 1):
            return pairs[0] if pairs else Choice(types[0], zones[0])
        ambiguous = f"Several providers have {attrs['instance_type']} in {attrs['zone']}."
        raise serializers.ValidationError({"zone": ambiguous})


class PoolInputSerializer(serializers.Serializer):
    """A new pool. Omitted settings take the defaults (min_size 1, max_size 1, scale_to_zero off...)."""

    name = serializers.SlugField(max_length=NAME_MAX_LENGTH, help_text="Unique; names the pool in URLs and logs")
    model = CodeRelatedField(queryset=LlmModel.objects.all(), help_text="Model code, e.g. mock-echo")
    choices = PoolChoiceInputSerializer(
        many=True, max_length=MAX_CHOICES,
        help_text="Where the pool may grow, first choice first: [{instance_type, zone}]",
    )
    enabled = serializers.BooleanField(required=False, help_text=Pool._meta.get_field("enabled").help_text)
    min_size = setting_field("min_size")
    max_size = setting_field("max_size")
    target_in_flight = setting_field("target_in_flight")
    ttft_p95_objective_s = setting_field("ttft_p95_objective_s")
    scale_up_window_s = setting_field("scale_up_window_s")
    scale_down_window_s = setting_field("scale_down_window_s")
    drain_timeout_s = setting_field("drain_timeout_s")
    scale_to_zero = serializers.BooleanField(required=False, help_text="Needs min_size 0 (and min_size 0 needs it)")
    idle_period_s = setting_field("idle_period_s")
    hold_timeout_s = setting_field("hold_timeout_s")
    hold_queue_size = setting_field("hold_queue_size")


class PoolUpdateSerializer(PoolInputSerializer):
    """A change to a pool: only the fields sent change; `choices`, when sent, replaces the list in order.
    A pool's name does not change."""

    name = None


class PoolChoiceSerializer(serializers.ModelSerializer):
    instance_type = serializers.CharField(source="instance_type.code")
    zone = serializers.CharField(source="zone.code")
    provider = serializers.CharField(source="instance_type.provider.code")

    class Meta:
        model = PoolChoice
        fields = ["position", "instance_type", "zone", "provider"]
        read_only_fields = fields


class PoolSizeSerializer(serializers.Serializer):
    ready = serializers.IntegerField(source="ready_count", help_text="Members serving")
    starting = serializers.IntegerField(
        source="starting_count", help_text="Provisioning, booting, installing or starting"
    )
    draining = serializers.IntegerField(source="draining_count", help_text="Finishing their work before termination")


class PoolSignalsSerializer(serializers.Serializer):
    """The load the autoscaler last saw (its latest sample)."""

    at = serializers.DateTimeField()
    in_flight = serializers.IntegerField()
    waiting = serializers.IntegerField()
    held = serializers.IntegerField()
    ttft_p95_s = serializers.FloatField(allow_null=True)
    kv_cache_usage = serializers.FloatField(allow_null=True)


class PoolMemberSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The instance's id")
    status = serializers.CharField()


class PoolSerializer(serializers.ModelSerializer):
    """A pool as `autoscaling.selectors.pool_rows` reads it: settings, choices, size, members and latest signals."""

    model = serializers.CharField(source="model.code")
    members = PoolMemberSerializer(many=True, source="live_members", default=list, help_text="Its live instances "
                                   "(requested, starting, serving or draining), oldest first")
    choices = PoolChoiceSerializer(many=True)
    size = PoolSizeSerializer(source="*")
    signals = serializers.SerializerMethodField()

    class Meta:
        model = Pool
        fields = [
            "id", "name", "model", "enabled", "min_size", "max_size", "target_in_flight", "ttft_p95_objective_s",
            "scale_up_window_s", "scale_down_window_s", "drain_timeout_s", "scale_to_zero", "idle_period_s",
            "hold_timeout_s", "hold_queue_size", "choices", "size", "members", "desired_size", "last_reason", "last_decision_at",
            "held_requests", "signals", "created_at", "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(PoolSignalsSerializer(allow_null=True))
    def get_signals(self, pool):
        if pool.latest_at is None:
            return None  # no tick has sampled the pool yet
        return PoolSignalsSerializer({field: getattr(pool, f"latest_{field}") for field in POOL_SIGNALS}).data


class PoolSampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = PoolSample
        fields = [
            "at", "ready", "starting", "draining", "desired", "in_flight", "waiting", "held", "ttft_p95_s",
            "kv_cache_usage", "reason",
        ]
        read_only_fields = fields


class SamplesQuerySerializer(serializers.Serializer):
    minutes = serializers.IntegerField(
        min_value=1, max_value=MAX_SAMPLE_MINUTES, default=DEFAULT_SAMPLE_MINUTES, help_text="How far back"
    )
