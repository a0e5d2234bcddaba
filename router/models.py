"""API keys for the OpenAI-compatible data plane, and one trace row per routed request."""

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A client's key. Only its SHA-256 hash is stored; the clear key is shown once, at creation.

    Limits are optional and apply per router process (see router/limits.py).
    """

    name = models.CharField(max_length=100)
    # The first characters of the key (`sk-inv-abcde`), so an operator can tell keys apart.
    prefix = models.CharField(max_length=20)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Written by the usage flusher, never on the request path: up to a second behind.
    last_used_at = models.DateTimeField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # Model codes this key may call; empty means every model.
    allowed_models = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class RequestTrace(models.Model):
    """One request the router answered (authenticated requests only). Append-only: counters per model
    or instance are aggregated from these rows (router/selectors.py)."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        CLIENT_ERROR = "client_error", "Client error"
        UPSTREAM_ERROR = "upstream_error", "Upstream error"
        NO_INSTANCE = "no_instance", "No instance"
        RATE_LIMITED = "rate_limited", "Rate limited"
        FORBIDDEN = "forbidden", "Model not allowed"
        STREAM_BROKEN = "stream_broken", "Stream broken"
        CLIENT_DISCONNECTED = "client_disconnected", "Client disconnected"
        # Scale from zero: no instance came up within the pool's hold timeout, or its queue was full.
        HOLD_TIMEOUT = "hold_timeout", "Hold timed out"
        HOLD_QUEUE_FULL = "hold_queue_full", "Hold queue full"

    id = models.BigAutoField(primary_key=True)
    # No index of its own (`trace_key_time` starts with it) and no database constraint: each would cost
    # every one of thousands of inserts a second (an index entry; a referential check per row at commit,
    # bench/router.py). The usage writer names only keys that exist (router/usage.py), and deleting a
    # key nulls its traces (SET_NULL, done by Django).
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="traces",
                                db_index=False, db_constraint=False)
    endpoint = models.CharField(max_length=40)
    model = models.CharField(max_length=200)
    # A plain UUID, not a foreign key: traces outlive the instances they describe.
    instance_id = models.UUIDField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=30, choices=Outcome.choices)
    error_message = models.TextField(blank=True)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Streams only: from the request's arrival to the first byte sent back.
    ttft_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField()
    # Held while the model's pool scaled from zero (part of latency_ms and ttft_ms); null when not held.
    held_ms = models.FloatField(null=True, blank=True)
    retries = models.PositiveSmallIntegerField(default=0)
    route_reason = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        # The Traces page's filters, each newest first. Every index costs each of thousands of inserts a
        # second: per-instance counters scan a time range through `trace_time` instead of a fifth one.
        indexes = [
            models.Index(fields=["-created_at"], name="trace_time"),
            models.Index(fields=["model", "-created_at"], name="trace_model_time"),
            models.Index(fields=["api_key", "-created_at"], name="trace_key_time"),
            models.Index(fields=["status_code", "-created_at"], name="trace_status_time"),
        ]

    def __str__(self):
        return f"{self.endpoint} {self.model} {self.status_code}"
