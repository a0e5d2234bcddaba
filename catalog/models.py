"""The catalog: where machines can be rented, what they cost, and which models they can serve.

Rows are addressed by code. Codes are unique within their parent (a region within its provider, a zone
within its region, an instance type within its provider). Parents are protected: deleting a provider
that still has regions is refused instead of cascading.
"""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models


class ProviderManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class Provider(models.Model):
    class Adapter(models.TextChoices):
        MOCK = "mock", "Mock cloud"
        SCALEWAY = "scaleway", "Scaleway"

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
    # Provider-specific allocation parameters (image, boot type, volume sizes, container image...).
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
    # The Hugging Face id (e.g. "Qwen/Qwen2.5-7B-Instruct") or a Mock name such as "mock-echo".
    code = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    vram_required_gb = models.PositiveIntegerField()
    context_length = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    recommended_disk_gb = models.PositiveIntegerField(default=0)
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
