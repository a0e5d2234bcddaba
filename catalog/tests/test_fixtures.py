"""The catalog seed: loading it twice changes nothing, and it holds the providers, zones, types, models and
action types the README's "Catalog" section lists."""

import pytest
from django.core.management import call_command

from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, RuntimeSetting, Zone
from catalog.setting_specs import SETTING_SPECS
from monitoring.models import ActionType

pytestmark = pytest.mark.django_db

SEEDED_MODELS = [Provider, Region, Zone, InstanceType, InstanceTypeZone, LlmModel, RuntimeSetting, ActionType]

# The action-type vocabulary (scripts/make_catalog_fixture.py, ACTION_TYPES), in its order.
ACTION_TYPES = """
REQUEST_CREATE EXECUTE_CREATE PROVIDER_CREATE PERSIST_PROVIDER_ID PROVIDER_START PROVIDER_GET_IP INSTANCE_CREATED
WORKER_REGISTERED WORKER_VLLM_HTTP_OK WORKER_MODEL_LOADED HEALTH_CHECK INSTANCE_READY INSTANCE_STARTUP_FAILED
HEARTBEAT_LOST REQUEUE_PROVISION REQUEST_DRAIN DRAIN_COMPLETE REQUEST_TERMINATE EXECUTE_TERMINATE PROVIDER_TERMINATE
TERMINATION_PENDING TERMINATOR_RETRY TERMINATION_CONFIRMED INSTANCE_TERMINATED PROVIDER_DELETED_DETECTED
ORPHAN_DETECTED ORPHAN_TERMINATED ARCHIVE_INSTANCE REQUEST_REINSTALL EXECUTE_REINSTALL SCALE_DECISION CATALOG_SYNC
BUDGET_THRESHOLD
CATALOG_CREATE CATALOG_UPDATE CATALOG_DELETE SETTING_CREATE SETTING_UPDATE SETTING_DELETE
API_KEY_CREATE API_KEY_UPDATE API_KEY_REVOKE API_KEY_DELETE BUDGET_CREATE BUDGET_UPDATE BUDGET_DELETE
MACHINE_SECRET_CREATE MACHINE_SECRET_UPDATE MACHINE_SECRET_DELETE
MOCK_FAULT_CREATE MOCK_FAULT_UPDATE MOCK_FAULT_DELETE MOCK_AGENT_KILL MOCK_ENGINE_CRASH MOCK_SERVER_DELETE
""".split()


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in SEEDED_MODELS}


def offers(type_code: str) -> list[str]:
    return sorted(InstanceTypeZone.objects.filter(instance_type__code=type_code).values_list("zone__code", flat=True))


def test_loading_the_seed_twice_gives_the_same_rows(seed):
    first = row_counts()

    call_command("loaddata", "catalog", verbosity=0)

    assert row_counts() == first
    assert first == {
        "Provider": 2,
        "Region": 4,
        "Zone": 9,
        "InstanceType": 18,
        "InstanceTypeZone": 28,
        "LlmModel": 14,  # 12 chat models, one embedding model and mock-echo
        "RuntimeSetting": len(SETTING_SPECS),
        "ActionType": 55,
    }


def test_loading_the_seed_again_resets_an_edited_price(seed):
    InstanceType.objects.filter(code="L4-1-24G").update(cost_per_hour=9)

    call_command("loaddata", "catalog", verbosity=0)

    assert str(InstanceType.objects.get(code="L4-1-24G").cost_per_hour) == "0.7875"


@pytest.mark.parametrize(
    ("type_code", "zones"),
    [
        ("MOCK-GPU-S", ["mock-eu-1"]),
        ("MOCK-4GPU-M", ["mock-eu-1"]),
        ("L4-1-24G", ["fr-par-2", "pl-waw-2"]),
        ("L4-2-24G", ["fr-par-2", "pl-waw-2"]),
        ("L4-4-24G", ["fr-par-2", "pl-waw-2"]),
        ("L4-8-24G", ["fr-par-2", "pl-waw-2"]),
        ("L40S-1-48G", ["fr-par-2", "pl-waw-2"]),
        ("L40S-2-48G", ["fr-par-2", "pl-waw-2"]),
        ("L40S-4-48G", ["fr-par-2", "pl-waw-2"]),
        ("L40S-8-48G", ["fr-par-2", "pl-waw-2"]),
        ("H100-1-80G", ["fr-par-2", "pl-waw-2"]),
        ("H100-2-80G", ["fr-par-2", "pl-waw-2"]),
        ("H100-SXM-2-80G", ["fr-par-2"]),
        ("H100-SXM-4-80G", ["fr-par-2"]),
        ("H100-SXM-8-80G", ["fr-par-2"]),
        ("B300-SXM-8-288G", ["fr-par-2"]),
        ("RENDER-S", ["fr-par-1"]),
        ("GPU-3070-S", ["fr-par-2"]),
    ],
)
def test_the_seed_offers_each_type_in_the_reference_zones(seed, type_code, zones):
    assert offers(type_code) == zones


def test_the_seed_has_the_reference_shapes_and_prices(seed):
    h100 = InstanceType.objects.get(code="H100-SXM-8-80G")
    assert (h100.gpu_count, h100.vram_per_gpu_gb, h100.vcpu, h100.ram_gb, str(h100.cost_per_hour)) == (
        8, 80, 128, 960, "25.3308"
    )
    assert InstanceType.objects.get(code="MOCK-GPU-S").provider.code == "mock"
    assert sorted(Zone.objects.filter(region__code="nl-ams").values_list("code", flat=True)) == [
        "nl-ams-1", "nl-ams-2", "nl-ams-3"
    ]
    assert LlmModel.objects.get(code="Qwen/Qwen2.5-72B-Instruct").vram_required_gb == 160
    assert LlmModel.objects.get(code="mock-echo").mock_only


def test_the_seed_carries_what_the_launch_planner_needs(seed):
    llama = LlmModel.objects.get(code="meta-llama/Llama-3.1-8B-Instruct")
    shape = (llama.layers, llama.attention_heads, llama.kv_heads, llama.head_size, llama.context_length)
    assert shape == (32, 32, 8, 128, 131072)
    assert llama.gated and str(llama.weights_gb) == "16.06"
    embedder = LlmModel.objects.get(task=LlmModel.Task.EMBED)
    assert (embedder.code, embedder.gated) == ("Qwen/Qwen3-Embedding-0.6B", False)
    h100 = InstanceType.objects.get(code="H100-SXM-4-80G")
    assert (str(h100.compute_capability), h100.root_volumes) == ("9.0", {"sbs_volume": [5, 10000]})
    assert "l_ssd" in InstanceType.objects.get(code="RENDER-S").root_volumes
    assert InstanceType.objects.get(code="MOCK-GPU-S").compute_capability is None


def test_the_seed_holds_all_33_action_types_and_every_runtime_setting(seed):
    assert sorted(ActionType.objects.values_list("code", flat=True)) == sorted(ACTION_TYPES)
    assert set(RuntimeSetting.objects.values_list("key", flat=True)) == set(SETTING_SPECS)
