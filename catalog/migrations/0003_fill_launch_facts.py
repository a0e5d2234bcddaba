"""Fill the launch facts of catalog rows that match the seed, so an existing catalog plans at once.

Only rows whose new fields are still empty change: an operator's own figures are kept. The figures are read
from fixtures/catalog.json (their sources are listed in scripts/make_catalog_fixture.py).

Scaleway types still on the GPU OS 12 image move to GPU OS 13 (current vLLM images need its CUDA 13 driver),
and their allocation parameters lose the keys the launch plan now decides (root volume, engine image).
"""

import json
from pathlib import Path

from django.db import migrations

SEED = Path(__file__).resolve().parent.parent.parent / "fixtures" / "catalog.json"
MODEL_FACTS = ("task", "parameters_b", "weights_gb", "layers", "attention_heads", "kv_heads", "head_size", "gated")
TYPE_FACTS = ("compute_capability", "root_volumes")
OLD_GPU_OS, GPU_OS = "ubuntu_noble_gpu_os_12", "ubuntu_noble_gpu_os_13_nvidia"
PLANNED_KEYS = ("root_volume_gb", "root_volume_type", "vllm_image")


def fill(apps, schema_editor):
    if not SEED.exists():
        return
    rows = json.loads(SEED.read_text())
    LlmModel = apps.get_model("catalog", "LlmModel")
    InstanceType = apps.get_model("catalog", "InstanceType")
    for row in rows:
        fields = row["fields"]
        if row["model"] == "catalog.llmmodel":
            LlmModel.objects.filter(code=fields["code"], layers=0).update(
                **{name: fields[name] for name in MODEL_FACTS if name in fields}
            )
        elif row["model"] == "catalog.instancetype":
            InstanceType.objects.filter(
                provider__code=fields["provider"][0], code=fields["code"], compute_capability__isnull=True
            ).update(**{name: fields[name] for name in TYPE_FACTS if name in fields})
    for instance_type in InstanceType.objects.filter(provider__adapter="scaleway"):
        params = dict(instance_type.allocation_params or {})
        if params.get("image") == OLD_GPU_OS:
            params["image"] = GPU_OS
        for key in PLANNED_KEYS:
            params.pop(key, None)
        if params != instance_type.allocation_params:
            InstanceType.objects.filter(pk=instance_type.pk).update(allocation_params=params)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_launch_plan_facts")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
