"""Write fixtures/catalog.json from the seed tables below.

Run `python scripts/make_catalog_fixture.py` after editing a table. The fixture uses natural keys and no
primary keys, so `manage.py loaddata catalog` updates rows in place on a database that already has them.

Every launch fact below says where it was checked (December 2026, with the search tools of the session that
wrote it); "not verified" marks the figures no source could confirm. The launch planner
(catalog/launch_plan.py) turns these facts into plans; the README's "Launch plans" table shows the result.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog.gpus import compute_capability  # noqa: E402  (no Django imports)
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
# Source: the 2026-10-01 capture of Scaleway's products/servers (above) confirms vCPUs, RAM (GiB), GPU count,
# gpu_memory (24/48/80/288 GiB, P100 16 GiB) and hourly prices of L4-1-24G, L4-2-24G, L40S-1-48G (1.469916),
# H100-1-80G, H100-SXM-8-80G, B300-SXM-8-288G and RENDER-S; the other rows follow their family (not verified).
# Compute capability comes from the GPU model (catalog/gpus.py, NVIDIA's CUDA GPUs pages).
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
# Root volume types each type accepts, with their size range in GB.
# Source: Scaleway's product catalog, GET https://api.scaleway.com/instance/v1/zones/{zone}/products/servers,
# as captured on 2026-10-01 in a public repository's test data: L4-1-24G, L4-2-24G, L40S-1-48G, H100-1-80G,
# H100-SXM-8-80G and B300-SXM-8-288G have `volumes_constraint` {0, 0} and `per_volume_constraint.l_ssd`
# {0, 0} (no local volume: block storage only); RENDER-S has `volumes_constraint` max 400 GB and `l_ssd`
# 1-800 GB per volume. Block volumes (`sbs_volume`) hold 5 GB to 10 TB (Scaleway docs-content,
# macros/block-storage/block-storage-volume-types.mdx: "sbs_5k ... 5 GB to 10 TB").
# Not verified (absent from that capture): L4-4/8, L40S-2/4/8, H100-2-80G and H100-SXM-2/4-80G are given their
# family's constraints; GPU-3070-S (end of life since September 2025) is assumed block-only.
BLOCK_ONLY = {"sbs_volume": [5, 10000]}
ROOT_VOLUMES = {"RENDER-S": {"sbs_volume": [5, 10000], "l_ssd": [1, 400]}}
# Fixtures bypass auto_now, so rows carry the date of the seed.
SEEDED_AT = "2026-11-26T00:00:00Z"
# code, task, VRAM floor GB, maximum context, parameters (billions), layers, attention heads, KV heads,
# head size, gated on Hugging Face. Weights are served in bf16: 2 bytes per parameter.
# Sources (config.json fields num_hidden_layers / num_attention_heads / num_key_value_heads / head_dim or
# hidden_size / num_attention_heads / max_position_embeddings):
# - Qwen2.5: copies of each Instruct model's config.json in public repositories (7B: "_name_or_path":
#   "Qwen/Qwen2.5-7B-Instruct", 28/4/28 layers, hidden 3584, 32768; 72B: 64/8/80, hidden 8192, 32768;
#   0.5B: 14/2/24, hidden 896) and the Qwen2.5 release table (qwenlm.github.io/blog/qwen2.5, as copied in
#   public notes: params 0.49/7.61/14.7/32.5/72.7 B, layers 24/28/48/64/80, heads 14/2, 28/4, 40/8, 40/8,
#   64/8). Instruct context 32768. Not verified against the 14B and 32B Instruct config.json themselves.
# - Llama 3.1: meta-llama/llama-models, models/llama3_1/api/sku_list.py (8B: dim 4096, 32 layers, 32 heads,
#   8 KV heads; 70B: dim 8192, 80 layers, 64 heads, 8 KV heads; max_seq_length 131072). Parameters 8.03 B
#   ("8,030,261,248" in a public model description) and 70.6 B (Hugging Face model page; not verified).
# - Mistral-7B-v0.3: layer shapes of Mistral-7B-v0.3 in a public dump (32 blocks, q 4096x4096, k 1024x4096:
#   8 KV heads of 128) and Mistral 7B v0.2+ configs (32 heads, 32768 context). Parameters 7.25 B: not verified.
# - Mixtral-8x7B: config.json copy with "_name_or_path": "mistralai/Mixtral-8x7B-Instruct-v0.1" (32 layers,
#   32 heads, 8 KV heads, head_dim 128, 32768); 46.7 B parameters (Azure/azureml-assets model description).
# - gemma-2: google-deepmind/gemma TransformerConfig.gemma2_9b / gemma2_27b (9B: 16 heads, 8 KV heads, head_dim
#   256; 27B: 32 heads, 16 KV heads, head_dim 128) and pytorch/torchtune's gemma2 builders (42 / 46 layers,
#   max_seq_len 8192). Parameters 9.24 B and 27.2 B: Hugging Face model pages, not verified.
# - Phi-3-mini-4k: keras-team/keras-hub phi3_presets.py (3,821,079,552 parameters, 32 layers, 4k context) and
#   a config reader (hidden 3072, 32 heads, no grouped KV: 32 KV heads, head size 96).
# - Qwen3-Embedding-0.6B (the embedding model): vLLM's docs/models/supported_models.md lists it as an
#   embedding model (Qwen3ForCausalLM converted with --convert embed); 595,776,512 parameters and 32k context
#   (keras-team/keras-hub qwen3_presets.py); shape of the Qwen3-0.6B config.json it is built on (28 layers,
#   16 heads, 8 KV heads, head_dim 128). Apache 2.0, not gated.
# Gated: Llama 3.1 and gemma-2 (Hugging Face 401 "gated repo" reports in public issues), Mistral and Mixtral
# (gated since 2024, same reports for Mistral-7B-Instruct-v0.2 and Mixtral-8x7B-Instruct-v0.1; v0.3 itself not
# verified). Qwen2.5, Qwen3-Embedding and Phi-3 are not gated.
GENERATE, EMBED = "generate", "embed"
MODELS = [
    ("Qwen/Qwen2.5-0.5B-Instruct", GENERATE, 2, 32768, "0.49", 24, 14, 2, 64, False),
    ("Qwen/Qwen2.5-7B-Instruct", GENERATE, 16, 32768, "7.61", 28, 28, 4, 128, False),
    ("Qwen/Qwen2.5-14B-Instruct", GENERATE, 28, 32768, "14.7", 48, 40, 8, 128, False),
    ("Qwen/Qwen2.5-32B-Instruct", GENERATE, 64, 32768, "32.5", 64, 40, 8, 128, False),
    ("Qwen/Qwen2.5-72B-Instruct", GENERATE, 160, 32768, "72.7", 80, 64, 8, 128, False),
    ("meta-llama/Llama-3.1-8B-Instruct", GENERATE, 16, 131072, "8.03", 32, 32, 8, 128, True),
    ("meta-llama/Llama-3.1-70B-Instruct", GENERATE, 160, 131072, "70.6", 80, 64, 8, 128, True),
    ("mistralai/Mistral-7B-Instruct-v0.3", GENERATE, 16, 32768, "7.25", 32, 32, 8, 128, True),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", GENERATE, 96, 32768, "46.7", 32, 32, 8, 128, True),
    ("google/gemma-2-9b-it", GENERATE, 20, 8192, "9.24", 42, 16, 8, 256, True),
    ("google/gemma-2-27b-it", GENERATE, 56, 8192, "27.2", 46, 32, 16, 128, True),
    ("microsoft/Phi-3-mini-4k-instruct", GENERATE, 8, 4096, "3.82", 32, 32, 32, 96, False),
    ("Qwen/Qwen3-Embedding-0.6B", EMBED, 2, 32768, "0.60", 28, 16, 8, 128, False),
]
# code, label, icon, colour, category. Colour families: REQUEST_* blue, EXECUTE_* purple, PROVIDER_* orange,
# WORKER_* sky, INSTANCE_CREATED/READY green, *_TERMINATED red, ARCHIVE gray, *_DETECTED yellow, HEALTH_CHECK teal,
# SCALE_* indigo.
ACTION_TYPES = [
    ("REQUEST_CREATE", "Create requested", "plus-circle", "blue", "request"),
    ("EXECUTE_CREATE", "Create started", "play", "purple", "execute"),
    ("PROVIDER_CREATE", "Server created at provider", "server", "orange", "provider"),
    ("PERSIST_PROVIDER_ID", "Provider id saved", "save", "orange", "provider"),
    ("PROVIDER_START", "Server powered on", "power", "orange", "provider"),
    ("PROVIDER_GET_IP", "Public IP obtained", "globe", "orange", "provider"),
    ("INSTANCE_CREATED", "Instance created", "check-circle", "green", "lifecycle"),
    ("WORKER_REGISTERED", "Worker registered", "cpu", "sky", "worker"),
    # The agent of a host the operator runs spent its join token for a worker token (instances/joining.py).
    ("WORKER_JOINED", "Worker joined", "link", "sky", "worker"),
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
    ("INSTANCE_TERMINATED", "Instance terminated", "x-octagon", "gray", "lifecycle"),  # an end, not a failure
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
    # Operator writes to configuration, with who, from where and each field before/after (monitoring/audit.py):
    # created green, changed blue, deleted or revoked red.
    ("CATALOG_CREATE", "Catalog row created", "plus-square", "green", "audit"),
    ("CATALOG_UPDATE", "Catalog row changed", "edit", "blue", "audit"),
    ("CATALOG_DELETE", "Catalog row deleted", "trash-2", "red", "audit"),
    ("SETTING_CREATE", "Runtime setting created", "plus-square", "green", "audit"),
    ("SETTING_UPDATE", "Runtime setting changed", "sliders", "blue", "audit"),
    ("SETTING_DELETE", "Runtime setting deleted", "trash-2", "red", "audit"),
    ("API_KEY_CREATE", "API key created", "key", "green", "audit"),
    ("API_KEY_UPDATE", "API key changed", "edit", "blue", "audit"),
    ("API_KEY_REVOKE", "API key revoked", "slash", "red", "audit"),
    ("API_KEY_DELETE", "API key deleted", "trash-2", "red", "audit"),
    ("BUDGET_CREATE", "Budget created", "plus-square", "green", "audit"),
    ("BUDGET_UPDATE", "Budget changed", "edit", "blue", "audit"),
    ("BUDGET_DELETE", "Budget deleted", "trash-2", "red", "audit"),
    ("MACHINE_SECRET_CREATE", "Machine secret set", "lock", "green", "audit"),
    ("MACHINE_SECRET_UPDATE", "Machine secret changed", "lock", "blue", "audit"),
    ("MACHINE_SECRET_DELETE", "Machine secret cleared", "unlock", "red", "audit"),
    # The Mock cloud's console (catalog/mock_cloud.py): faults armed, changed, disarmed; operations on a server.
    ("MOCK_FAULT_CREATE", "Mock fault armed", "zap", "green", "audit"),
    ("MOCK_FAULT_UPDATE", "Mock fault changed", "zap", "blue", "audit"),
    ("MOCK_FAULT_DELETE", "Mock fault disarmed", "zap-off", "red", "audit"),
    ("MOCK_AGENT_KILL", "Mock agent killed", "x-circle", "red", "audit"),
    ("MOCK_ENGINE_CRASH", "Mock engine crashed", "alert-octagon", "red", "audit"),
    ("MOCK_SERVER_DELETE", "Mock server deleted", "trash-2", "red", "audit"),
    # A GPU machine the operator runs was registered, and its join token issued (instances/hosts.py).
    ("HOST_REGISTER", "Host registered", "link", "green", "audit"),
]


# The OS image of every Scaleway GPU type: GPU OS 13, the NVIDIA driver for the CUDA 13 vLLM images, Docker and the
# container toolkit. Source: Scaleway's marketplace (GET https://api.scaleway.com/marketplace/v2/images, captured
# 2026-10-01): "Ubuntu Noble GPU OS 13 (Nvidia)", label ubuntu_noble_gpu_os_13_nvidia. Root volumes, the engine
# image and its arguments come from the launch plan (catalog/launch_plan.py), not from here.
GPU_OS_IMAGE = "ubuntu_noble_gpu_os_13_nvidia"


def allocation_params(provider: str, code: str, vram_gb: int) -> dict:
    if provider == "mock":
        return {"runtime_vram_gb": vram_gb}
    return {"image": GPU_OS_IMAGE, "boot_type": "local"}


def launch_facts(provider: str, code: str, gpu: str) -> dict:
    if provider == "mock":
        return {"compute_capability": None, "root_volumes": {}, "engine_image": ""}
    capability = compute_capability(gpu)
    return {
        "compute_capability": str(capability) if capability is not None else None,
        "root_volumes": ROOT_VOLUMES.get(code, BLOCK_ONLY),
        "engine_image": "",
    }


def model_row(code, task, vram, context, params, layers, heads, kv_heads, head_size, gated) -> dict:
    weights = f"{float(params) * 2:.2f}"  # bf16
    return {"model": "catalog.llmmodel", "fields": {
        "code": code, "name": code.split("/", 1)[1], "task": task, "vram_required_gb": vram, "context_length": context,
        "parameters_b": params, "weights_gb": weights, "layers": layers, "attention_heads": heads,
        "kv_heads": kv_heads, "head_size": head_size, "gated": gated, "mock_only": False, "allow_simulator": False,
        "active": True,
    }}


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
                    "allocation_params": allocation_params(provider, code, vram), **launch_facts(provider, code, gpu),
                    "active": True,
                },
            }
        )
        for zone in zones:
            rows.append({"model": "catalog.instancetypezone", "fields": {"instance_type": [provider, code], "zone": zone_keys[zone], "availability": "available", "updated_at": SEEDED_AT}})
    rows.append({"model": "catalog.llmmodel", "fields": {"code": "mock-echo", "name": "Mock echo (simulator)", "task": GENERATE, "vram_required_gb": 0, "context_length": 8192, "mock_only": True, "allow_simulator": True, "active": True}})
    for model in MODELS:
        rows.append(model_row(*model))
    for spec in SETTING_SPECS.values():
        rows.append({"model": "catalog.runtimesetting", "fields": {"key": spec.key, "value_type": spec.value_type, "value": spec.default, "default": spec.default, "min_value": spec.min_value, "max_value": spec.max_value, "description": spec.description, "updated_at": SEEDED_AT}})
    for code, label, icon, color, category in ACTION_TYPES:
        rows.append({"model": "monitoring.actiontype", "fields": {"code": code, "label": label, "icon": icon, "color": color, "category": category, "active": True}})
    return rows


if __name__ == "__main__":
    path = ROOT / "fixtures" / "catalog.json"
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path}")
