"""Small factories for catalog rows: each builds one valid row, and a test names only what it cares about."""

from decimal import Decimal
from itertools import count

from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, Zone

_serial = count(1)


def make_provider(*, code: str | None = None, adapter: str = Provider.Adapter.SCALEWAY, **fields) -> Provider:
    code = code or f"cloud-{next(_serial)}"
    return Provider.objects.create(code=code, name=fields.pop("name", code.title()), adapter=adapter, **fields)


def make_region(*, provider: Provider | None = None, code: str | None = None, **fields) -> Region:
    code = code or f"region-{next(_serial)}"
    provider = provider or make_provider()
    return Region.objects.create(provider=provider, code=code, name=fields.pop("name", code), **fields)


def make_zone(*, region: Region | None = None, code: str | None = None, **fields) -> Zone:
    return Zone.objects.create(region=region or make_region(), code=code or f"zone-{next(_serial)}", **fields)


# An L4-like GPU that boots from block storage, as Scaleway's GPU types do.
GPU_FACTS = {"gpu_model": "L4", "compute_capability": Decimal("8.9"), "root_volumes": {"sbs_volume": [5, 10000]}}


def make_instance_type(
    *,
    provider: Provider | None = None,
    code: str | None = None,
    gpu_count: int = 1,
    vram_per_gpu_gb: int = 24,
    cost_per_hour: str = "1.0",
    zones: tuple[Zone, ...] = (),
    **fields,
) -> InstanceType:
    fields = {**GPU_FACTS, **fields}
    instance_type = InstanceType.objects.create(
        provider=provider or make_provider(),
        code=code or f"GPU-{next(_serial)}",
        gpu_count=gpu_count,
        vram_per_gpu_gb=vram_per_gpu_gb,
        vcpu=fields.pop("vcpu", 8),
        ram_gb=fields.pop("ram_gb", 32),
        cost_per_hour=Decimal(cost_per_hour),
        **fields,
    )
    for zone in zones:
        InstanceTypeZone.objects.create(instance_type=instance_type, zone=zone)
    return instance_type


# The shape of a small model (about 1 B parameters) that the planner fits on any seeded GPU type.
SMALL_SHAPE = {"weights_gb": Decimal("2"), "layers": 24, "attention_heads": 16, "kv_heads": 8, "head_size": 64}


def make_model(*, code: str | None = None, vram_required_gb: int = 16, **fields) -> LlmModel:
    return LlmModel.objects.create(
        code=code or f"org/model-{next(_serial)}",
        vram_required_gb=vram_required_gb,
        context_length=fields.pop("context_length", 8192),
        **{**SMALL_SHAPE, **fields},
    )
