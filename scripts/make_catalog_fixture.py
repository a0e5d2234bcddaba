"""Write fixtures/catalog.json from the seed tables below (../shared/REFERENCE.md sections 1 and 2).

Run `python scripts/make_catalog_fixture.py` after editing a table. The fixture uses natural keys and no
primary keys, so `manage.py loaddata catalog` updates rows in place on a database that already has them.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog.setting_specs import SETTING_SPECS  # noqa: E402  (no Django imports)

PROVIDERS = [
    ("mock", "Mock cloud", "mock", "Local simulated cloud, always available."),
    ("scaleway", "Scaleway", "scaleway", "Scaleway GPU instances (needs SCW_ACCESS_KEY, SCW_SECRET_KEY, SCW_DEFAULT_PROJECT_ID)."),
]
REGIONS = [
    ("mock", "mock-eu", "Mock Europe", ["mock-eu-1"]),
    ("scaleway", "fr-par", "Paris", ["fr-par-1", "fr-par-2", "fr-par-3"]),
    ("scaleway", "nl-ams", "Amsterdam", ["nl-ams-1", "nl-ams-2", "nl-ams-3"]),
    ("scaleway", "pl-waw", "Warsaw", ["pl-waw-1", "pl-waw-2"]),
]
PAR2_WAW2 = ["fr-par-2", "pl-waw-2"]
# code, gpu model, gpus, vram per gpu, vcpu, ram, eur/h, zones, bandwidth mbps
TYPES = [
    ("mock", "MOCK-GPU-S", "Mock GPU", 1, 24, 8, 32, "0.25", ["mock-eu-1"], 1000),
    ("mock", "MOCK-4GPU-M", "Mock GPU", 4, 48, 16, 64, "0.75", ["mock-eu-1"], 1000),
    ("scaleway", "L4-1-24G", "L4", 1, 24, 8, 48, "0.7875", PAR2_WAW2, 2500),
    ("scaleway", "L4-2-24G", "L4", 2, 24, 16, 96, "1.575", PAR2_WAW2, 5000),
    ("scaleway", "L4-4-24G", "L4", 4, 24, 32, 192, "3.15", PAR2_WAW2, 10000),
    ("scaleway", "L4-8-24G", "L4", 8, 24, 64, 384, "6.30", PAR2_WAW2, 20000),
    ("scaleway", "L40S-1-48G", "L40S", 1, 48, 8, 96, "1.4699", PAR2_WAW2, 2500),
    ("scaleway", "L40S-2-48G", "L40S", 2, 48, 16, 192, "2.9398", PAR2_WAW2, 5000),
    ("scaleway", "L40S-4-48G", "L40S", 4, 48, 32, 384, "5.8797", PAR2_WAW2, 10000),
    ("scaleway", "L40S-8-48G", "L40S", 8, 48, 64, 768, "11.7593", PAR2_WAW2, 20000),
    ("scaleway", "H100-1-80G", "H100 PCIe", 1, 80, 24, 240, "2.8665", PAR2_WAW2, 10000),
    ("scaleway", "H100-2-80G", "H100 PCIe", 2, 80, 48, 480, "5.733", PAR2_WAW2, 20000),
    ("scaleway", "H100-SXM-2-80G", "H100 SXM", 2, 80, 32, 240, "6.6198", ["fr-par-2"], 20000),
    ("scaleway", "H100-SXM-4-80G", "H100 SXM", 4, 80, 64, 480, "12.6654", ["fr-par-2"], 20000),
    ("scaleway", "H100-SXM-8-80G", "H100 SXM", 8, 80, 128, 960, "25.3308", ["fr-par-2"], 20000),
    ("scaleway", "B300-SXM-8-288G", "B300 SXM", 8, 288, 224, 3840, "60.00", ["fr-par-2"], 20000),
    ("scaleway", "RENDER-S", "P100", 1, 16, 10, 42, "1.221", ["fr-par-1"], 1000),
    ("scaleway", "GPU-3070-S", "RTX 3070", 1, 8, 8, 16, "0.76", ["fr-par-2"], 1000),
]
# L4/L40S boot from block storage; the others from local volumes (REFERENCE.md section 4).
BLOCK_BOOT = ("L4-", "L40S-")
# Fixtures bypass auto_now, so rows carry the date of the seed.
SEEDED_AT = "2026-11-26T00:00:00Z"
MODELS = [
    ("Qwen/Qwen2.5-0.5B-Instruct", 2, 32768, 50),
    ("Qwen/Qwen2.5-7B-Instruct", 16, 32768, 200),
    ("Qwen/Qwen2.5-14B-Instruct", 28, 32768, 300),
    ("Qwen/Qwen2.5-32B-Instruct", 64, 32768, 500),
    ("Qwen/Qwen2.5-72B-Instruct", 160, 32768, 1200),
    ("meta-llama/Llama-3.1-8B-Instruct", 16, 131072, 200),
    ("meta-llama/Llama-3.1-70B-Instruct", 160, 131072, 1200),
    ("mistralai/Mistral-7B-Instruct-v0.3", 16, 32768, 200),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", 96, 32768, 400),
    ("google/gemma-2-9b-it", 20, 8192, 200),
    ("google/gemma-2-27b-it", 56, 8192, 500),
    ("microsoft/Phi-3-mini-4k-instruct", 8, 4096, 80),
]
# code, label, icon, colour, category (colour families from REFERENCE.md section 2)
ACTION_TYPES = [
    ("REQUEST_CREATE", "Create requested", "plus-circle", "blue", "request"),
    ("EXECUTE_CREATE", "Create started", "play", "purple", "execute"),
    ("PROVIDER_CREATE", "Server created at provider", "server", "orange", "provider"),
    ("PERSIST_PROVIDER_ID", "Provider id saved", "save", "orange", "provider"),
    ("PROVIDER_START", "Server powered on", "power", "orange", "provider"),
    ("PROVIDER_GET_IP", "Public IP obtained", "globe", "orange", "provider"),
    ("INSTANCE_CREATED", "Instance created", "check-circle", "green", "lifecycle"),
    ("WORKER_REGISTERED", "Worker registered", "cpu", "sky", "worker"),
    ("WORKER_VLLM_HTTP_OK", "Engine answers HTTP", "activity", "sky", "worker"),
    ("WORKER_MODEL_LOADED", "Model loaded", "box", "sky", "worker"),
    ("HEALTH_CHECK", "Health check", "heart", "teal", "health"),
    ("INSTANCE_READY", "Instance ready", "check-circle", "green", "lifecycle"),
    ("INSTANCE_STARTUP_FAILED", "Startup failed", "x-circle", "red", "lifecycle"),
    ("HEARTBEAT_LOST", "Heartbeat lost", "heart-off", "red", "health"),
    ("REQUEUE_PROVISION", "Provision re-queued", "rotate-cw", "purple", "reconcile"),
    ("REQUEST_DRAIN", "Drain requested", "pause-circle", "blue", "request"),
    ("DRAIN_COMPLETE", "Drain complete", "check", "green", "lifecycle"),
    ("REQUEST_TERMINATE", "Termination requested", "trash", "blue", "request"),
    ("EXECUTE_TERMINATE", "Termination started", "play", "purple", "execute"),
    ("PROVIDER_TERMINATE", "Server terminated at provider", "power-off", "orange", "provider"),
    ("TERMINATION_PENDING", "Waiting for deletion", "clock", "orange", "provider"),
    ("TERMINATOR_RETRY", "Termination retried", "rotate-cw", "purple", "reconcile"),
    ("TERMINATION_CONFIRMED", "Deletion confirmed", "check", "orange", "provider"),
    ("INSTANCE_TERMINATED", "Instance terminated", "x-octagon", "red", "lifecycle"),
    ("PROVIDER_DELETED_DETECTED", "Deleted at provider", "alert-triangle", "yellow", "reconcile"),
    ("ORPHAN_DETECTED", "Orphan server found", "alert-triangle", "yellow", "reconcile"),
    ("ORPHAN_TERMINATED", "Orphan server terminated", "x-octagon", "red", "reconcile"),
    ("ARCHIVE_INSTANCE", "Instance archived", "archive", "gray", "lifecycle"),
    ("REQUEST_REINSTALL", "Reinstall requested", "refresh-cw", "blue", "request"),
    ("EXECUTE_REINSTALL", "Reinstall started", "play", "purple", "execute"),
    ("SCALE_DECISION", "Scaling decision", "trending-up", "indigo", "scaling"),
    ("CATALOG_SYNC", "Catalog synced", "refresh-cw", "teal", "catalog"),
    # A pool's or an API key's spend crossed 80 % or 100 % of its monthly budget (finops).
    ("BUDGET_THRESHOLD", "Budget threshold crossed", "dollar-sign", "yellow", "health"),
]


def allocation_params(provider: str, code: str, vram_gb: int) -> dict:
    if provider == "mock":
        return {"runtime_vram_gb": vram_gb}
    params = {"image": "ubuntu_noble_gpu_os_12", "boot_type": "local", "root_volume_gb": 125}
    if code.startswith(BLOCK_BOOT):
        params.update(root_volume_type="sbs_volume")
    else:
        params.update(root_volume_type="l_ssd")
    params["vllm_image"] = "vllm/vllm-openai:v0.11.0"
    return params


def build() -> list[dict]:
    rows: list[dict] = []
    for code, name, adapter, description in PROVIDERS:
        rows.append({"model": "catalog.provider", "fields": {"code": code, "name": name, "adapter": adapter, "description": description, "active": True}})
    zone_keys = {}
    for provider, code, name, zones in REGIONS:
        rows.append({"model": "catalog.region", "fields": {"provider": [provider], "code": code, "name": name, "active": True}})
        for zone in zones:
            zone_keys[zone] = [provider, code, zone]
            rows.append({"model": "catalog.zone", "fields": {"region": [provider, code], "code": zone, "name": f"{name} {zone.rsplit('-', 1)[1]}", "active": True}})
    for provider, code, gpu, count, vram, vcpu, ram, price, zones, bandwidth in TYPES:
        rows.append(
            {
                "model": "catalog.instancetype",
                "fields": {
                    "provider": [provider], "code": code, "name": f"{count} x {gpu} {vram} GB", "gpu_model": gpu,
                    "gpu_count": count, "vram_per_gpu_gb": vram, "vcpu": vcpu, "ram_gb": ram,
                    "bandwidth_mbps": bandwidth, "cost_per_hour": price,
                    "allocation_params": allocation_params(provider, code, vram), "active": True,
                },
            }
        )
        for zone in zones:
            rows.append({"model": "catalog.instancetypezone", "fields": {"instance_type": [provider, code], "zone": zone_keys[zone], "availability": "available", "updated_at": SEEDED_AT}})
    rows.append({"model": "catalog.llmmodel", "fields": {"code": "mock-echo", "name": "Mock echo (simulator)", "vram_required_gb": 0, "context_length": 8192, "recommended_disk_gb": 0, "mock_only": True, "allow_simulator": True, "active": True}})
    for code, vram, context, disk in MODELS:
        rows.append({"model": "catalog.llmmodel", "fields": {"code": code, "name": code.split("/", 1)[1], "vram_required_gb": vram, "context_length": context, "recommended_disk_gb": disk, "mock_only": False, "allow_simulator": False, "active": True}})
    for spec in SETTING_SPECS.values():
        rows.append({"model": "catalog.runtimesetting", "fields": {"key": spec.key, "value_type": spec.value_type, "value": spec.default, "default": spec.default, "min_value": spec.min_value, "max_value": spec.max_value, "description": spec.description, "updated_at": SEEDED_AT}})
    for code, label, icon, color, category in ACTION_TYPES:
        rows.append({"model": "monitoring.actiontype", "fields": {"code": code, "label": label, "icon": icon, "color": color, "category": category, "active": True}})
    return rows


if __name__ == "__main__":
    path = ROOT / "fixtures" / "catalog.json"
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path}")
