"""The catalog: where machines can be rented, what they cost, and which models they can serve.

Rows are addressed by code. Codes are unique within their parent (a region within its provider, a zone
within its region, an instance type within its provider). Parents are protected: deleting a provider
that still has regions is refused instead of cascading.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

MAX_VOLUME_GB = 1_000_000  # far above any provider's volume, low enough for every database integer


def validate_root_volumes(value) -> None:
    """{"volume type": [min GB, max GB], ...}: whole numbers, 0 <= min <= max."""
    if not isinstance(value, dict):
        raise ValidationError('Must be a JSON object such as {"sbs_volume": [5, 10000]}.')
    for kind, limits in value.items():
        sound = (
            isinstance(limits, list) and len(limits) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_VOLUME_GB for n in limits)
        )
        if not sound or limits[0] > limits[1] or not kind or "\x00" in kind:
            raise ValidationError(f"{kind!r}: give [min GB, max GB], whole numbers with min <= max.")


class ProviderManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class Provider(models.Model):
    class Adapter(models.TextChoices):
        MOCK = "mock", "Mock cloud"
        SCALEWAY = "scaleway", "Scaleway"
        # Machines the operator already runs, registered by hand (providers/static.py): nothing is rented.
        STATIC = "static", "Your own machines"

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    adapter = models.CharField(max_length=20, choices=Adapter.choices)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)

    objects = ProviderManager()

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.code

    def natural_key(self):
        return (self.code,)

    @property
    def is_mock(self) -> bool:
        return self.adapter == self.Adapter.MOCK

    @property
    def is_static(self) -> bool:
        """Hosts the operator runs and registers (README, "A GPU machine you run yourself")."""
        return self.adapter == self.Adapter.STATIC


class RegionManager(models.Manager):
    def get_by_natural_key(self, provider_code, code):
        return self.get(provider__code=provider_code, code=code)


class Region(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="regions")
    code = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)

    objects = RegionManager()

    class Meta:
        ordering = ["provider__code", "code"]
        constraints = [models.UniqueConstraint(fields=["provider", "code"], name="region_code_unique_per_provider")]

    def __str__(self):
        return self.code

    def natural_key(self):
        return (self.provider.code, self.code)

    natural_key.dependencies = ["catalog.provider"]


class ZoneManager(models.Manager):
    def get_by_natural_key(self, provider_code, region_code, code):
        return self.get(region__provider__code=provider_code, region__code=region_code, code=code)


class Zone(models.Model):
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="zones")
    code = models.SlugField(max_length=50)
    name = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)

    objects = ZoneManager()

    class Meta:
        ordering = ["region__provider__code", "code"]
        constraints = [models.UniqueConstraint(fields=["region", "code"], name="zone_code_unique_per_region")]

    def __str__(self):
        return self.code

    def natural_key(self):
        return (self.region.provider.code, self.region.code, self.code)

    natural_key.dependencies = ["catalog.region"]

    @property
    def provider(self) -> Provider:
        return self.region.provider


class InstanceTypeManager(models.Manager):
    def get_by_natural_key(self, provider_code, code):
        return self.get(provider__code=provider_code, code=code)


class InstanceType(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="instance_types")
    code = models.CharField(max_length=60)
    name = models.CharField(max_length=100, blank=True)
    gpu_model = models.CharField(max_length=60, blank=True)
    gpu_count = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    vram_per_gpu_gb = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    vcpu = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    ram_gb = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    bandwidth_mbps = models.PositiveIntegerField(default=0)
    cost_per_hour = models.DecimalField(
        max_digits=10, decimal_places=4, validators=[MinValueValidator(Decimal("0"))], help_text="EUR per hour, excl. VAT"
    )
    # CUDA compute capability of the GPU (8.9 for an L4): it decides which engine image can run there.
    compute_capability = models.DecimalField(
        max_digits=4, decimal_places=1, null=True, blank=True, validators=[MinValueValidator(Decimal("1.0"))],
        help_text="CUDA compute capability of the GPU (8.9 for L4 and L40S, 9.0 for H100); empty on Mock types",
    )
    # Root volume types the provider accepts for this type, each with its size range in GB, as Scaleway's
    # product catalog says (`volumes_constraint`, `per_volume_constraint`): {"sbs_volume": [5, 10000]}.
    root_volumes = models.JSONField(default=dict, blank=True, validators=[validate_root_volumes])
    engine_image = models.CharField(
        max_length=200, blank=True, help_text="Engine image for this type; empty: the planner's image for its GPU"
    )
    # Provider-specific allocation parameters (OS image, boot type...). Volume sizes and the engine image
    # come from the launch plan (catalog/launch_plan.py), not from here.
    allocation_params = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    zones = models.ManyToManyField(Zone, through="InstanceTypeZone", related_name="instance_types", blank=True)

    objects = InstanceTypeManager()

    class Meta:
        ordering = ["provider__code", "cost_per_hour", "code"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "code"], name="instance_type_code_unique_per_provider")
        ]

    def __str__(self):
        return self.code

    def natural_key(self):
        return (self.provider.code, self.code)

    natural_key.dependencies = ["catalog.provider"]

    @property
    def total_vram_gb(self) -> int:
        return self.gpu_count * self.vram_per_gpu_gb


class InstanceTypeZoneManager(models.Manager):
    def get_by_natural_key(self, provider_code, type_code, zone_provider_code, region_code, zone_code):
        return self.get(
            instance_type__provider__code=provider_code,
            instance_type__code=type_code,
            zone__region__provider__code=zone_provider_code,
            zone__region__code=region_code,
            zone__code=zone_code,
        )


class InstanceTypeZone(models.Model):
    """An instance type is offered in a zone; `availability` is refreshed from the provider."""

    class Availability(models.TextChoices):
        AVAILABLE = "available", "Available"
        SCARCE = "scarce", "Scarce"
        SHORTAGE = "shortage", "Shortage"
        UNKNOWN = "unknown", "Unknown"

    instance_type = models.ForeignKey(InstanceType, on_delete=models.CASCADE, related_name="zone_offers")
    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, related_name="type_offers")
    availability = models.CharField(max_length=20, choices=Availability.choices, default=Availability.AVAILABLE)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InstanceTypeZoneManager()

    class Meta:
        ordering = ["instance_type__code", "zone__code"]
        constraints = [models.UniqueConstraint(fields=["instance_type", "zone"], name="instance_type_zone_unique")]

    def __str__(self):
        return f"{self.instance_type.code} @ {self.zone.code}"

    def natural_key(self):
        return self.instance_type.natural_key() + self.zone.natural_key()

    natural_key.dependencies = ["catalog.instancetype", "catalog.zone"]


class LlmModelManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class LlmModel(models.Model):
    """A model Inventiv can serve. The shape fields (figures from the model's config.json) let the launch
    planner size a machine for it; a real model without them is planned nowhere."""

    class Task(models.TextChoices):
        GENERATE = "generate", "Text generation"
        EMBED = "embed", "Embeddings"

    # The Hugging Face id (e.g. "Qwen/Qwen2.5-7B-Instruct") or a Mock name such as "mock-echo".
    code = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.GENERATE)
    # A floor: types with fewer GB of VRAM in all are refused before any sizing.
    vram_required_gb = models.PositiveIntegerField()
    # The model's maximum context (config.json `max_position_embeddings`); plans may serve less.
    context_length = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    parameters_b = models.DecimalField(
        max_digits=7, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(Decimal("0"))],
        help_text="Parameters, in billions",
    )
    weights_gb = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(Decimal("0"))],
        help_text="Size of the weights as served (bf16: 2 bytes per parameter), in GB",
    )
    layers = models.PositiveIntegerField(default=0, help_text="num_hidden_layers")
    attention_heads = models.PositiveIntegerField(default=0, help_text="num_attention_heads")
    kv_heads = models.PositiveIntegerField(default=0, help_text="num_key_value_heads")
    head_size = models.PositiveIntegerField(default=0, help_text="head_dim (hidden size / attention heads)")
    # Gated on Hugging Face: the machine needs HF_TOKEN to download the weights.
    gated = models.BooleanField(default=False)
    # mock_only: a simulated model that only Mock machines serve (mock-echo).
    mock_only = models.BooleanField(default=False)
    # allow_simulator: an operator allows this real model to be served by the simulator on Mock machines.
    allow_simulator = models.BooleanField(default=False)
    active = models.BooleanField(default=True)

    objects = LlmModelManager()

    class Meta:
        ordering = ["code"]
        verbose_name = "LLM model"

    def __str__(self):
        return self.code

    def natural_key(self):
        return (self.code,)


class RuntimeSettingManager(models.Manager):
    def get_by_natural_key(self, key):
        return self.get(key=key)


class RuntimeSetting(models.Model):
    """A typed setting operators can change without a deploy. `value` is stored as text."""

    class ValueType(models.TextChoices):
        INT = "int", "Integer"
        FLOAT = "float", "Decimal number"
        BOOL = "bool", "Yes/No"
        STR = "str", "Text"

    key = models.SlugField(max_length=100, unique=True)
    value_type = models.CharField(max_length=10, choices=ValueType.choices)
    value = models.CharField(max_length=500)
    default = models.CharField(max_length=500)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    description = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RuntimeSettingManager()

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key

    def natural_key(self):
        return (self.key,)


class MachineSecret(models.Model):
    """A secret that GPU machines of some models need (the Hugging Face token), set in the dashboard and
    kept encrypted (inventiv/crypto.py). Only its name and whether it is set are ever shown."""

    name = models.CharField(max_length=50, unique=True)
    encrypted_value = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
