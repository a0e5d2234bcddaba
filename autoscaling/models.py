"""Pools: one model served on an ordered list of (instance type, zone) choices, sized by the autoscaler."""

from django.db import models

# Defaults a new pool starts with (README, "Autoscaling").
DEFAULT_TARGET_IN_FLIGHT = 8.0
DEFAULT_SCALE_UP_WINDOW_S = 60
DEFAULT_SCALE_DOWN_WINDOW_S = 180
DEFAULT_DRAIN_TIMEOUT_S = 300
DEFAULT_IDLE_PERIOD_S = 600
# Long enough for the slowest boot in the catalog (an H100 with its model download takes ~7 min), and the
# official openai client's own default request timeout (600 s): a held client waits, it does not give up.
DEFAULT_HOLD_TIMEOUT_S = 600
DEFAULT_HOLD_QUEUE_SIZE = 100


class Pool(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    model = models.ForeignKey("catalog.LlmModel", on_delete=models.PROTECT, related_name="pools")
    enabled = models.BooleanField(default=True, help_text="A disabled pool is left as it is: no scaling, no holding.")
    min_size = models.PositiveIntegerField(default=0)
    max_size = models.PositiveIntegerField(default=1)
    target_in_flight = models.FloatField(
        default=DEFAULT_TARGET_IN_FLIGHT, help_text="In-flight plus waiting requests one instance should carry."
    )
    ttft_p95_objective_s = models.FloatField(null=True, blank=True, help_text="Time to first token, p95, seconds.")
    # The policy's panic window (scale up fast on a burst) and stable window (scale down only on a long calm).
    scale_up_window_s = models.PositiveIntegerField(default=DEFAULT_SCALE_UP_WINDOW_S)
    scale_down_window_s = models.PositiveIntegerField(default=DEFAULT_SCALE_DOWN_WINDOW_S)
    drain_timeout_s = models.PositiveIntegerField(default=DEFAULT_DRAIN_TIMEOUT_S)
    scale_to_zero = models.BooleanField(default=False)
    idle_period_s = models.PositiveIntegerField(default=DEFAULT_IDLE_PERIOD_S)
    # Scale from zero: the router holds requests this long, at most this many at once, while the pool boots.
    hold_timeout_s = models.PositiveIntegerField(default=DEFAULT_HOLD_TIMEOUT_S)
    hold_queue_size = models.PositiveIntegerField(default=DEFAULT_HOLD_QUEUE_SIZE)

    # What the autoscaler last decided, and the policy's history between ticks (autoscaling.policy.PolicyState).
    desired_size = models.PositiveIntegerField(default=0)
    last_reason = models.CharField(max_length=300, blank=True)
    last_decision_at = models.DateTimeField(null=True, blank=True)
    policy_state = models.JSONField(default=dict, blank=True)
    # Requests the router holds for this pool (reported by the router when it holds one, and refreshed
    # while it does); counted as load only while recent.
    held_requests = models.PositiveIntegerField(default=0)
    held_at = models.DateTimeField(null=True, blank=True)
    # A tick is working on this pool until then; two workers never decide for one pool at once.
    claimed_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class PoolChoice(models.Model):
    """One (instance type, zone) a pool may grow on; lower position is tried first."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="choices")
    position = models.PositiveIntegerField()
    instance_type = models.ForeignKey("catalog.InstanceType", on_delete=models.PROTECT, related_name="+")
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["pool", "position"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "position"], name="pool_choice_position_unique"),
            models.UniqueConstraint(fields=["pool", "instance_type", "zone"], name="pool_choice_unique"),
        ]

    def __str__(self):
        return f"{self.pool.name} #{self.position}: {self.instance_type.code} in {self.zone.code}"


class PoolSample(models.Model):
    """One autoscaler tick for a pool: its size, load and decision (the Pools page chart and history)."""

    id = models.BigAutoField(primary_key=True)
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    ready = models.PositiveIntegerField(default=0)
    starting = models.PositiveIntegerField(default=0)
    draining = models.PositiveIntegerField(default=0)
    desired = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    waiting = models.PositiveIntegerField(default=0)
    held = models.PositiveIntegerField(default=0)
    ttft_p95_s = models.FloatField(null=True, blank=True)
    kv_cache_usage = models.FloatField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["pool", "-at"], name="pool_sample_pool_at")]

    @property
    def size(self) -> int:
        return self.ready + self.starting
