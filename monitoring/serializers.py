from rest_framework import serializers

from monitoring.models import ActionLog


class ActionLogSerializer(serializers.ModelSerializer):
    instance = serializers.UUIDField(source="instance_id", read_only=True, allow_null=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    parent = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = ActionLog
        fields = [
            "id", "action_type", "component", "status", "error_code", "error_message", "instance", "user",
            "instance_status_before", "instance_status_after", "duration_ms", "created_at", "completed_at",
            "parent", "metadata", "request_payload", "response_payload",
        ]
        read_only_fields = fields

