"""The Mock cloud console's API shapes: a fault as armed, a server as the operator sees it (never its user
data or environment: they hold the machine's secrets)."""

from rest_framework import serializers

from catalog.mock_cloud import MAX_FAULT_DELAY_S, fault_problems
from providers.base import ServerState
from providers.mock_console import ServerView
from providers.models import MockFault


class MockFaultSerializer(serializers.ModelSerializer):
    remaining = serializers.IntegerField(
        min_value=1, allow_null=True, required=False, default=1,
        help_text="How many matching calls fail; null: every one until disarmed.")
    delay_s = serializers.FloatField(
        min_value=0, max_value=MAX_FAULT_DELAY_S, required=False, default=0,
        help_text="slow_create: how much longer the create takes; vanish: how long after it runs the server goes.")

    class Meta:
        model = MockFault
        fields = ["id", "kind", "zone", "commercial_type", "remaining", "permanent", "delay_s", "message", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "zone": {"help_text": "Only calls in this Mock zone; blank: every zone."},
            "commercial_type": {"help_text": "Only calls for this Mock type; blank: every type."},
            "permanent": {"help_text": "create_fails / start_fails: whether retrying cannot help."},
        }

    def validate(self, attrs):
        problems = fault_problems(zone=attrs.get("zone", ""), commercial_type=attrs.get("commercial_type", ""),
                                  remaining=attrs.get("remaining", 1), delay_s=attrs.get("delay_s", 0))
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class MockServerSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="server.pk")
    name = serializers.CharField(source="server.name")
    zone = serializers.CharField(source="server.zone")
    commercial_type = serializers.CharField(source="server.commercial_type")
    instance = serializers.CharField(source="server.instance_id", help_text="The instance it serves ('' if none).")
    state = serializers.ChoiceField(choices=[state.value for state in ServerState], source="state.value")
    agent_running = serializers.BooleanField(
        allow_null=True, help_text="Whether its worker agent runs; null where the runtime runs none.")
    runtime = serializers.SerializerMethodField()
    public_ip = serializers.IPAddressField(source="server.public_ip")
    agent_port = serializers.SerializerMethodField()
    engine_port = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(source="server.created_at")
    running_at = serializers.DateTimeField(source="server.running_at", allow_null=True)
    deleted_at = serializers.DateTimeField(source="server.deleted_at", allow_null=True)

    def get_runtime(self, view: ServerView) -> str:
        return view.server.metadata.get("runtime", "")

    def get_agent_port(self, view: ServerView) -> int | None:
        return view.server.metadata.get("agent_port")

    def get_engine_port(self, view: ServerView) -> int | None:
        return view.server.metadata.get("engine_port")
