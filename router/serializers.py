from rest_framework import serializers

from router.models import ApiKey, RequestTrace


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    requests_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    tokens_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list,
        help_text="Model codes this key may use; empty means every model.",
    )


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "prefix", "active", "created_by", "created_at", "revoked_at", "last_used_at",
            "requests_per_minute", "tokens_per_minute", "allowed_models",
        ]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key in clear: shown this once, never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class RequestTraceSerializer(serializers.ModelSerializer):
    api_key_name = serializers.CharField(source="api_key.name", read_only=True, default=None)
    instance = serializers.UUIDField(source="instance_id", read_only=True, allow_null=True,
                                     help_text="The instance that served it (null: none did)")

    class Meta:
        model = RequestTrace
        fields = [
            "id", "created_at", "api_key", "api_key_name", "endpoint", "model", "instance", "status_code",
            "outcome", "error_message", "stream", "prompt_tokens", "completion_tokens", "ttft_ms", "latency_ms",
            "retries", "route_reason", "held_ms",
        ]
        read_only_fields = fields
