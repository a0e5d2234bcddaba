"""Action types (the catalog of everything Inventiv logs) and, later, action logs and heartbeats."""

from django.db import models


class ActionTypeManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class ActionType(models.Model):
    class Category(models.TextChoices):
        REQUEST = "request", "Request"
        EXECUTE = "execute", "Execution"
        PROVIDER = "provider", "Provider"
        WORKER = "worker", "Worker"
        LIFECYCLE = "lifecycle", "Lifecycle"
        HEALTH = "health", "Health"
        RECONCILE = "reconcile", "Reconciliation"
        SCALING = "scaling", "Scaling"
        CATALOG = "catalog", "Catalog"
        AUDIT = "audit", "Operator change"

    code = models.CharField(max_length=60, unique=True)
    label = models.CharField(max_length=100)
    icon = models.CharField(max_length=50)
    color = models.CharField(max_length=20)
    category = models.CharField(max_length=20, choices=Category.choices)
    active = models.BooleanField(default=True)

    objects = ActionTypeManager()

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.code

    def natural_key(self):
        return (self.code,)


class ActionLog(models.Model):
    """One step Inventiv took (or saw), with its timing, outcome and the instance status around it.

    `instance_id` is a plain UUID rather than a foreign key: monitoring sits below instances in the
    dependency graph, and logs must outlive the rows they describe.
    """

    class Component(models.TextChoices):
        API = "api", "API"
        ORCHESTRATOR = "orchestrator", "Orchestrator"
        WORKER = "worker", "Worker"
        ROUTER = "router", "Router"
        AUTOSCALER = "autoscaler", "Autoscaler"

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"

    action_type = models.CharField(max_length=60)
    component = models.CharField(max_length=20, choices=Component.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUCCESS)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    instance_id = models.UUIDField(null=True, blank=True)
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    request_payload = models.JSONField(null=True, blank=True)
    response_payload = models.JSONField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    metadata = models.JSONField(default=dict, blank=True)
    instance_status_before = models.CharField(max_length=30, blank=True)
    instance_status_after = models.CharField(max_length=30, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The timeline of one instance, and the filtered, newest-first listings of the Monitoring page.
        # The INCLUDE columns let PostgreSQL count a filtered set per status from the index alone (an
        # index-only scan): over a million rows that is ~10x faster than visiting the table.
        # See bench/action_log_listing.py. SQLite builds the same indexes without them.
        indexes = [
            models.Index(fields=["instance_id", "created_at"], name="actionlog_instance_time", include=["status"]),
            models.Index(
                fields=["action_type", "-created_at"], name="actionlog_type_time", include=["status", "component"]
            ),
            models.Index(
                fields=["component", "-created_at"], name="actionlog_component_time", include=["status", "action_type"]
            ),
            models.Index(
                fields=["status", "-created_at"], name="actionlog_status_time", include=["component", "action_type"]
            ),
            models.Index(fields=["-created_at"], name="actionlog_time", include=["status"]),
        ]

    def __str__(self):
        return f"{self.action_type} {self.status}"


class WorkerState(models.Model):
    """The latest word from one instance's worker agent: a narrow row updated by every heartbeat."""

    class WorkerStatus(models.TextChoices):
        STARTING = "starting", "Starting"
        READY = "ready", "Ready"
        DRAINING = "draining", "Draining"
        ERROR = "error", "Error"

    instance_id = models.UUIDField(primary_key=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=WorkerStatus.choices, default=WorkerStatus.STARTING)
    reason = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    in_flight = models.PositiveIntegerField(default=0)
    agent_version = models.CharField(max_length=50, blank=True)
    engine_version = models.CharField(max_length=50, blank=True)
    engine = models.JSONField(default=dict, blank=True)
    gpus = models.JSONField(default=list, blank=True)
    host = models.JSONField(default=dict, blank=True)
    engine_log_tail = models.JSONField(default=list, blank=True)
    heartbeats = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"worker {self.instance_id} ({self.status})"

    @property
    def status_color(self) -> str:
        """The badge colour of the worker's status in the dashboard."""
        return WORKER_STATUS_COLORS.get(self.status, "gray")


# Badge colour of each worker status in the dashboard: the colours of the instance status families
# (instances/status.py, FAMILY_COLORS): serving green, on its way blue, error red.
WORKER_STATUS_COLORS = {
    WorkerState.WorkerStatus.STARTING: "blue",
    WorkerState.WorkerStatus.READY: "green",
    WorkerState.WorkerStatus.DRAINING: "blue",
    WorkerState.WorkerStatus.ERROR: "red",
}


class HeartbeatSample(models.Model):
    """Append-only time series of heartbeat metrics. Raw samples are kept for a while, then folded
    into one-minute averages by the retention job (`resolution_s` says which a row is)."""

    RAW = 0

    id = models.BigAutoField(primary_key=True)
    instance_id = models.UUIDField()
    at = models.DateTimeField()
    resolution_s = models.PositiveIntegerField(default=RAW)
    status = models.CharField(max_length=20, blank=True)
    in_flight = models.PositiveIntegerField(null=True, blank=True)
    running = models.FloatField(null=True, blank=True)
    waiting = models.FloatField(null=True, blank=True)
    kv_cache_usage = models.FloatField(null=True, blank=True)
    ttft_p95_s = models.FloatField(null=True, blank=True)
    gpu_utilization_pct = models.FloatField(null=True, blank=True)
    gpu_memory_used_mb = models.FloatField(null=True, blank=True)
    gpu_temperature_c = models.FloatField(null=True, blank=True)
    gpu_power_w = models.FloatField(null=True, blank=True)
    cpu_pct = models.FloatField(null=True, blank=True)
    memory_used_mb = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["instance_id", "at"], name="hbsample_instance_time"),
            models.Index(fields=["resolution_s", "at"], name="hbsample_resolution_time"),
        ]
