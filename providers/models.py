"""What providers persist: the Mock cloud's servers and injected faults, and the locks that keep two workers
from doing the same thing at a real cloud at once.

All live in the database so that every process (web, several Celery workers, a test) sees the same
cloud. A Mock server's state is never stored as such: it derives from the timestamps below and the clock,
so it does not depend on which process looks, or when a background thread happened to run.
"""

import json
import uuid

from django.db import models
from django.db.models import Q

from inventiv.crypto import decrypt_text, encrypt_text

MOCK_PUBLIC_IP = "127.0.0.1"


class MockServer(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    zone = models.CharField(max_length=50)
    name = models.CharField(max_length=200)
    commercial_type = models.CharField(max_length=60)
    tags = models.JSONField(default=list, blank=True)
    # The instance id found in the tags, kept in its own column so "the server of this instance" is one
    # indexed lookup (the idempotent create path).
    instance_id = models.CharField(max_length=64, blank=True)
    public_ip = models.GenericIPAddressField(default=MOCK_PUBLIC_IP)
    # The cloud's copy of what the machine is handed at start, as a real cloud keeps user data. The
    # environment holds the worker token and the engine key, so it is kept encrypted (`runtime_env`
    # reads and writes it); the process runtime decrypts it to start the agent from another process.
    user_data = models.TextField(blank=True)
    runtime_env_encrypted = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField()
    # Power-on was asked for at started_at; the server runs from running_at (started_at + boot delay).
    started_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    terminate_requested_at = models.DateTimeField(null=True, blank=True)
    # The server is gone from deleted_at on (termination + deletion delay, or vanished behind our back).
    deleted_at = models.DateTimeField(null=True, blank=True)
    volumes_deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["zone", "deleted_at"], name="mockserver_zone_deleted")]
        constraints = [
            # One live server per instance, even when two workers create at the same moment.
            models.UniqueConstraint(
                fields=["instance_id"],
                condition=Q(deleted_at__isnull=True) & ~Q(instance_id=""),
                name="mockserver_one_live_server_per_instance",
            )
        ]

    @property
    def runtime_env(self) -> dict:
        return json.loads(decrypt_text(self.runtime_env_encrypted)) if self.runtime_env_encrypted else {}

    @runtime_env.setter
    def runtime_env(self, env: dict) -> None:
        self.runtime_env_encrypted = encrypt_text(json.dumps(env)) if env else ""

    def __str__(self):
        return f"{self.name} ({self.id})"

    def is_deleted(self, now) -> bool:
        return self.deleted_at is not None and self.deleted_at <= now


class MockFault(models.Model):
    """A failure the Mock cloud will produce on the next matching calls (`remaining` times; null = always)."""

    class Kind(models.TextChoices):
        CREATE_FAILS = "create_fails", "Create fails"
        OUT_OF_STOCK = "out_of_stock", "Out of stock"
        QUOTA_EXCEEDED = "quota_exceeded", "Quota exceeded"
        START_FAILS = "start_fails", "Power-on fails"
        # The power-on is accepted, then the server is back to stopped (stock ran out under it).
        START_FALLS_BACK = "start_falls_back", "Power-on falls back to stopped"
        # The server disappears `delay_s` after it is running, as if deleted from the provider's console.
        VANISH = "vanish", "Server vanishes"
        # The create call takes `delay_s` longer after the server exists (a slow API; lets a test kill a
        # worker inside the call).
        SLOW_CREATE = "slow_create", "Slow create"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Blank matches every zone / commercial type.
    zone = models.CharField(max_length=50, blank=True)
    commercial_type = models.CharField(max_length=60, blank=True)
    remaining = models.PositiveIntegerField(null=True, blank=True, default=1)
    # For create_fails / start_fails: whether retrying can help (a transient fault clears once used up).
    permanent = models.BooleanField(default=True)
    delay_s = models.FloatField(default=0)
    message = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.kind} x{'∞' if self.remaining is None else self.remaining}"


class ProviderLock(models.Model):
    """A row to lock around work at a provider that two workers must never do at the same time, such as
    listing-or-creating a zone's security group (`providers.locks.provider_lock`)."""

    key = models.CharField(max_length=200, unique=True)
    # What the last holder found or made (a security group id), for the next one.
    value = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.key
