"""Input and output shapes of the instances API. Secrets (worker token hash, engine key) are never output."""

from rest_framework import serializers

from instances.models import Instance
from instances.status import Status
from instances.templatetags.instance_display import progress_percent
from monitoring.models import WorkerState
from monitoring.serializers import ActionLogSerializer

CODE_MAX_LENGTH = 200


class CodeField(serializers.CharField):
    """A catalog code. Absent, null or blank values go through (the service answers MISSING_PARAMS /
    MISSING_MODEL and stores the request); a number, list or object is a plain 400."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, allow_blank=True, max_length=CODE_MAX_LENGTH, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class InstanceCreateSerializer(serializers.Serializer):
    provider = CodeField(help_text="Provider code, e.g. mock or scaleway")
    zone = CodeField(help_text="Zone code, e.g. fr-par-2")
    instance_type = CodeField(help_text="Instance type code, e.g. L4-1-24G")
    model = CodeField(help_text="LLM model code, e.g. Qwen/Qwen2.5-7B-Instruct")

    def request_arguments(self) -> dict:
        return {name: self.validated_data.get(name) for name in self.fields}


class TerminateSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, max_length=200, default="operator request")


class DrainSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, max_length=200, default="operator request")
    timeout_s = serializers.IntegerField(
        required=False, min_value=0, max_value=86400,
        help_text="Longest wait for in-flight requests before the machine is terminated anyway "
        "(default: the runtime setting drain_timeout_s).",
    )


class InstanceSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    zone = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    instance_type = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    model = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    status_color = serializers.CharField(read_only=True)
    is_transitional = serializers.BooleanField(read_only=True)
    progress_percent = serializers.SerializerMethodField()
    pool = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True,
                                              help_text="The id of the autoscaling pool it serves (null: none)")
    worker_status = serializers.ChoiceField(
        choices=WorkerState.WorkerStatus.choices, read_only=True, allow_null=True, default=None,
        help_text="What its worker agent last reported (null before it first reports)")
    heartbeat_age_s = serializers.FloatField(read_only=True, allow_null=True, default=None,
                                             help_text="Seconds since its worker's last heartbeat (null: none yet)")

    class Meta:
        model = Instance
        fields = [
            "id", "status", "status_color", "progress_percent", "is_transitional",
            "provider", "zone", "instance_type", "model", "pool", "worker_status", "heartbeat_age_s",
            "requested", "created_by",
            "error_code", "error_message", "last_provider_error", "deletion_reason",
            "provider_server_id", "public_ip", "agent_port", "engine_port", "cost_per_hour", "requeue_count",
            "created_at", "status_changed_at", "provider_created_at", "booted_at", "ready_at", "draining_at",
            "terminating_at", "terminated_at", "failed_at", "archived_at",
        ]
        read_only_fields = fields

    def get_progress_percent(self, instance: Instance) -> int:
        return progress_percent(instance.status)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data["heartbeat_age_s"] is not None:
            data["heartbeat_age_s"] = round(data["heartbeat_age_s"], 1)
        return data


class InstanceAcceptedSerializer(InstanceSerializer):
    """An instance whose requested work was accepted (202), and whether its task could be enqueued."""

    enqueued = serializers.BooleanField(
        read_only=True, help_text="False when the task queue was unreachable: the work is saved all the same, and "
        "a beat sweep finishes it once the queue is back (see `note`). Do not ask again.")
    note = serializers.CharField(read_only=True, help_text="Which sweep finishes the work and when; empty when "
                                 "enqueued")

    class Meta(InstanceSerializer.Meta):
        fields = [*InstanceSerializer.Meta.fields, "enqueued", "note"]
        read_only_fields = fields


class TimelineEntrySerializer(ActionLogSerializer):
    """An action log with its action type's label and colour, as the timeline shows it."""

    type_label = serializers.CharField(source="type.label", default="", read_only=True)
    type_color = serializers.CharField(source="type.color", default="gray", read_only=True)
    type_icon = serializers.CharField(source="type.icon", default="", read_only=True)

    class Meta(ActionLogSerializer.Meta):
        fields = [*ActionLogSerializer.Meta.fields, "type_label", "type_color", "type_icon"]
        read_only_fields = fields


class InstanceDetailSerializer(InstanceSerializer):
    timeline = TimelineEntrySerializer(many=True, read_only=True, help_text="Action logs, oldest first")

    class Meta(InstanceSerializer.Meta):
        fields = [*InstanceSerializer.Meta.fields, "timeline"]
        read_only_fields = fields


class StatusCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="All instances, archived included")
    active = serializers.IntegerField(help_text="Instances not archived")
    by_status = serializers.DictField(
        child=serializers.IntegerField(), help_text=f"Instances per status ({', '.join(Status.values)})"
    )


class HostCreateSerializer(serializers.Serializer):
    """A machine you run yourself (README, "A GPU machine you run yourself"); the service checks the values."""

    address = serializers.CharField(max_length=100, help_text="The machine's IP address: the router connects to "
                                    "vLLM there, on the port its agent reports")
    instance_type = serializers.CharField(max_length=CODE_MAX_LENGTH, help_text="Its GPU type: the code of a "
                                          "catalog instance type (L4-1-24G...), copied into the static provider")
    zone = serializers.CharField(max_length=100, help_text="A zone label of your choice (home-lab, dc-paris)")
    hourly_price = serializers.CharField(max_length=30, help_text="What the machine costs you per hour (EUR): "
                                         "FinOps counts it from registration until it is detached")
    model = serializers.CharField(max_length=CODE_MAX_LENGTH, required=False, allow_blank=True, help_text=(
        "The catalog model it will serve; when absent, the one its agent names when it joins"))


class HostRegisteredSerializer(serializers.Serializer):
    instance = InstanceSerializer(read_only=True)
    join_token = serializers.CharField(read_only=True, help_text="Shown this once (only its hash is kept): give it "
                                       "to the agent as INVENTIV_JOIN_TOKEN")
    join_token_expires_at = serializers.DateTimeField(read_only=True)
    plan_fits = serializers.BooleanField(read_only=True, allow_null=True, help_text=(
        "Whether the launch planner finds a plan for the model on this GPU type (advice only; null: no model)"))
    plan_reason = serializers.CharField(read_only=True)
