"""The Instance aggregate: one rented GPU machine (or a request for one), from request to archive."""

import uuid

from django.conf import settings
from django.db import models

from instances.status import STATUS_COLORS, TRANSITIONAL, Status


class Instance(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Placement. Nullable because a rejected request (unknown zone, say) is stored too.
    provider = models.ForeignKey("catalog.Provider", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    zone = models.ForeignKey("catalog.Zone", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    instance_type = models.ForeignKey(
        "catalog.InstanceType", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model = models.ForeignKey("catalog.LlmModel", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The autoscaling pool this machine serves, if an autoscaler asked for it. A plain link: instances never
    # import autoscaling; the pool reads its members through it.
    pool = models.ForeignKey("autoscaling.Pool", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="instances")
    # The request as it came in (codes), so a rejected one stays traceable.
    requested = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    status = models.CharField(max_length=30, choices=Status.choices, default=Status.PROVISIONING)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    deletion_reason = models.CharField(max_length=200, blank=True)

    provider_server_id = models.CharField(max_length=100, blank=True)
    public_ip = models.GenericIPAddressField(null=True, blank=True)
    agent_port = models.PositiveIntegerField(null=True, blank=True)
    engine_port = models.PositiveIntegerField(null=True, blank=True)
    # The hourly price when the machine was requested; later price changes do not rewrite history.
    cost_per_hour = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)

    # Credentials for the machine: only a hash of the worker token; the engine key encrypted at rest.
    worker_token_hash = models.CharField(max_length=64, blank=True)
    engine_api_key_encrypted = models.TextField(blank=True)

    # How many times a lost provision was re-queued (capped by the runtime setting provision_max_requeues).
    requeue_count = models.PositiveIntegerField(default=0)
    # Provision runs that claimed this instance. Past the first, a server from an earlier run may exist.
    provision_attempts = models.PositiveIntegerField(default=0)
    # A worker (task or sweep) is acting on this row until then; others leave it alone. Claims expire on
    # their own, so a worker killed mid-step never blocks the row for good.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Last time provisioning moved forward (request, claim, server persisted, re-queue): a provision with
    # no progress for provision_requeue_after_s is taken as lost.
    progress_at = models.DateTimeField(null=True, blank=True)
    # A machine still booting/installing/starting after this fails with STARTUP_TIMEOUT.
    startup_deadline_at = models.DateTimeField(null=True, blank=True)
    # The server fell back to `stopped` after its power-on (stock ran out) and was powered on again then; a
    # second fall back fails it with PROVIDER_OUT_OF_STOCK (readiness.py).
    power_on_retried_at = models.DateTimeField(null=True, blank=True)
    # The last error a provider call answered while the instance was being retried or re-queued: code,
    # message, the provider's details (which argument, why) and when; shown until the instance moves on.
    last_provider_error = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    provider_created_at = models.DateTimeField(null=True, blank=True)
    booted_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    draining_at = models.DateTimeField(null=True, blank=True)
    # A draining machine is terminated at this moment even if requests are still in flight.
    drain_deadline_at = models.DateTimeField(null=True, blank=True)
    terminating_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "status_changed_at"], name="instance_status_changed"),
            models.Index(fields=["provider_server_id"], name="instance_provider_server"),
        ]

    def __str__(self):
        return f"{self.id} ({self.status})"

    @property
    def is_transitional(self) -> bool:
        return self.status in TRANSITIONAL

    @property
    def status_color(self) -> str:
        return STATUS_COLORS.get(self.status, "gray")


class JoinToken(models.Model):
    """The one-time token that lets the worker agent of a host the operator runs join (README, "A GPU machine
    you run yourself"): shown once at registration, only its SHA-256 kept, valid until `expires_at`, and
    exchanged once (`used_at`) for the instance's own worker token (instances/joining.py)."""

    instance = models.OneToOneField(Instance, on_delete=models.CASCADE, related_name="join_token")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"join token of {self.instance_id}"


class OrphanServer(models.Model):
    """A server carrying Inventiv's tag that no live instance owns, from when a sweep first saw it.

    It is terminated once it has been seen for orphan_grace_s (a create that is still being recorded
    gets that long to claim it), and the row goes when the provider no longer lists the server.
    """

    provider = models.ForeignKey("catalog.Provider", on_delete=models.CASCADE, related_name="+")
    zone = models.CharField(max_length=50)
    server_id = models.CharField(max_length=100)
    server_name = models.CharField(max_length=200, blank=True)
    # The instance id found in the server's tags, if any (unknown to Inventiv, or terminated).
    instance_id = models.CharField(max_length=64, blank=True)
    first_seen_at = models.DateTimeField()
    terminate_requested_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["first_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "zone", "server_id"], name="orphan_server_unique")
        ]

    def __str__(self):
        return f"orphan {self.server_id} in {self.zone}"
