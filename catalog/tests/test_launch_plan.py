"""The launch planner: pure rules on plain values, then the seeded catalog's acceptance pairs."""

from dataclasses import replace
from decimal import Decimal

import pytest

from catalog import services
from catalog.launch_plan import (
    HF_TOKEN,
    MIN_USEFUL_CONTEXT,
    SIMULATOR_IMAGE,
    VLLM_IMAGE,
    LaunchPlan,
    ModelSpec,
    Refusal,
    TypeSpec,
    kv_bytes_per_token,
    plan_launch,
    tensor_parallel_candidates,
)
from catalog.models import InstanceType, LlmModel

BLOCK = {"sbs_volume": (5, 10000)}
LLAMA_8B = ModelSpec(
    code="meta-llama/Llama-3.1-8B-Instruct", weights_gb=16.06, layers=32, attention_heads=32, kv_heads=8,
    head_size=128, max_context=131072, vram_required_gb=16, gated=True,
)
LLAMA_70B = ModelSpec(
    code="meta-llama/Llama-3.1-70B-Instruct", weights_gb=141.2, layers=80, attention_heads=64, kv_heads=8,
    head_size=128, max_context=131072, vram_required_gb=160, gated=True,
)
QWEN_7B = ModelSpec(
    code="Qwen/Qwen2.5-7B-Instruct", weights_gb=15.22, layers=28, attention_heads=28, kv_heads=4, head_size=128,
    max_context=32768, vram_required_gb=16,
)


def gpus(count: int, vram: int, *, capability: str = "8.9", **fields) -> TypeSpec:
    fields = {"root_volumes": BLOCK, "gpu_model": "L4", **fields}
    return TypeSpec(code=f"GPU-{count}x{vram}", gpu_count=count, vram_per_gpu_gb=vram,
                    compute_capability=Decimal(capability), **fields)


# --- Memory ---------------------------------------------------------------------------------


def test_a_token_of_llama_8b_takes_128_kib_of_kv_cache():
    assert kv_bytes_per_token(LLAMA_8B, 1) == 2 * 32 * 8 * 128 * 2 == 128 * 1024


def test_the_context_is_what_the_kv_cache_holds_beside_the_weights():
    plan = plan_launch(LLAMA_8B, gpus(1, 24))

    assert plan.fits and plan.tensor_parallel_size == 1
    # 24 GB x 0.90 - 16.06 GB of weights - 2 GB of engine memory = 3.54 GB: 27,008 tokens of 128 KiB.
    assert plan.kv_cache_tokens == 27008
    assert plan.max_model_len == 26624  # rounded down to a whole 1,024
    assert plan.gpu_memory_utilization == 0.90


def test_the_context_never_exceeds_the_models_maximum():
    plan = plan_launch(QWEN_7B, gpus(1, 48))

    assert plan.max_model_len == 32768 and plan.kv_cache_tokens > 32768


def test_a_higher_memory_utilisation_is_used_only_when_nothing_fits_at_the_default():
    plan = plan_launch(LLAMA_70B, gpus(2, 80, capability="9.0"))

    assert plan.fits and plan.gpu_memory_utilization == 0.95 and plan.tensor_parallel_size == 2
    assert MIN_USEFUL_CONTEXT <= plan.max_model_len < LLAMA_70B.max_context


def test_it_refuses_weights_that_do_not_fit_beside_the_engine():
    no_floor = replace(LLAMA_70B, vram_required_gb=0)

    plan = plan_launch(no_floor, gpus(2, 72, capability="9.0"))

    assert isinstance(plan, Refusal) and plan.kind == "memory"
    assert "70.6 GB of weights per GPU" in plan.reason


def test_it_refuses_a_context_shorter_than_a_useful_minimum():
    # gemma-2-9b's large KV heads (256 values), with slightly heavier weights than the real ones.
    wide = ModelSpec(code="org/wide", weights_gb=19.5, layers=42, attention_heads=16, kv_heads=8, head_size=256,
                     max_context=8192, vram_required_gb=20)

    plan = plan_launch(wide, gpus(1, 24))

    assert isinstance(plan, Refusal) and plan.kind == "context"
    assert "tokens of KV cache fit" in plan.reason and "4096" in plan.reason


# --- Parallelism ----------------------------------------------------------------------------


def test_tensor_parallel_sizes_divide_the_attention_heads():
    assert tensor_parallel_candidates(QWEN_7B, 8) == [1, 2, 4]  # 28 heads: 8 does not divide them
    assert tensor_parallel_candidates(LLAMA_70B, 8) == [1, 2, 4, 8]


def test_kv_heads_are_replicated_only_by_whole_multiples():
    three_kv_heads = ModelSpec(code="org/odd", attention_heads=24, kv_heads=3, layers=1, head_size=1,
                               weights_gb=1, max_context=1)
    assert tensor_parallel_candidates(three_kv_heads, 8) == [1]


def test_the_smallest_tensor_parallel_size_with_the_full_context_wins_and_other_gpus_become_replicas():
    plan = plan_launch(QWEN_7B, gpus(8, 24))

    assert (plan.tensor_parallel_size, plan.data_parallel_size, plan.max_model_len) == (1, 8, 32768)
    assert ["--data-parallel-size", "8"] == list(plan.args[3:5])


def test_a_large_model_spreads_over_enough_gpus_for_its_whole_context():
    plan = plan_launch(LLAMA_70B, gpus(4, 80, capability="9.0"))

    assert (plan.tensor_parallel_size, plan.data_parallel_size, plan.max_model_len) == (4, 1, 131072)


# --- Image, disk, secrets, arguments -----------------------------------------------------------


def test_a_gpu_older_than_current_vllm_images_is_refused_unless_the_type_names_its_own_image():
    p100 = gpus(1, 16, capability="6.0", gpu_model="P100")

    small = ModelSpec(code="Qwen/Qwen2.5-0.5B-Instruct", weights_gb=0.99, layers=24, attention_heads=14, kv_heads=2,
                      head_size=64, max_context=32768, vram_required_gb=2)

    refused = plan_launch(small, p100)
    assert isinstance(refused, Refusal) and refused.kind == "gpu"
    assert refused.reason.startswith("unsupported on this GPU") and "6.0" in refused.reason
    pinned = replace(p100, engine_image="vllm/vllm-openai:v0.3.3")
    assert plan_launch(small, pinned).image == "vllm/vllm-openai:v0.3.3"
    assert plan_launch(QWEN_7B, gpus(1, 24)).image == VLLM_IMAGE


def test_the_root_volume_holds_os_engine_and_weights_within_the_types_limits():
    plan = plan_launch(LLAMA_70B, gpus(4, 80, capability="9.0"))
    assert plan.root_volume.type == "sbs_volume" and plan.root_volume.size_gb >= 141 + 20 + 25

    local_only = gpus(4, 80, capability="9.0", root_volumes={"l_ssd": (1, 400)})
    assert plan_launch(LLAMA_70B, local_only).root_volume.type == "l_ssd"
    small_disks = gpus(4, 80, capability="9.0", root_volumes={"l_ssd": (1, 150)})
    refused = plan_launch(LLAMA_70B, small_disks)
    assert refused.kind == "disk" and "allows at most 150 GB" in refused.reason
    assert plan_launch(LLAMA_8B, gpus(1, 24, root_volumes={"sbs_volume": (500, 1000)})).root_volume.size_gb == 500


def test_only_gated_models_ask_for_the_hugging_face_token():
    assert plan_launch(LLAMA_8B, gpus(1, 24)).secret_env == (HF_TOKEN,)
    assert plan_launch(QWEN_7B, gpus(1, 24)).secret_env == ()


def test_the_arguments_carry_every_planned_value_and_embedding_models_run_as_pooling_models():
    plan = plan_launch(LLAMA_8B, gpus(1, 24))
    assert plan.args == (LLAMA_8B.code, "--tensor-parallel-size", "1", "--max-model-len", "26624",
                         "--gpu-memory-utilization", "0.90")
    assert plan.engine_flags == plan.args[1:]

    embedder = ModelSpec(code="Qwen/Qwen3-Embedding-0.6B", task="embed", weights_gb=1.2, layers=28,
                         attention_heads=16, kv_heads=8, head_size=128, max_context=32768, vram_required_gb=2)
    assert plan_launch(embedder, gpus(1, 24)).args[-4:] == ("--runner", "pooling", "--convert", "embed")


# --- Mock machines ------------------------------------------------------------------------


def test_mock_machines_run_the_simulator_with_a_trivial_volume():
    echo = ModelSpec(code="mock-echo", max_context=8192, mock_only=True)
    mock = TypeSpec(code="MOCK-GPU-S", gpu_count=1, vram_per_gpu_gb=24, is_mock=True)

    plan = plan_launch(echo, mock)

    assert isinstance(plan, LaunchPlan) and plan.image == SIMULATOR_IMAGE and plan.max_model_len == 8192
    assert plan.args == ("mock-echo", "--max-model-len", "8192")
    assert plan_launch(LLAMA_8B, mock).kind == "simulator"
    assert plan_launch(echo, gpus(1, 24)).kind == "mock-only"


# --- The seeded catalog ---------------------------------------------------------------------


def seeded(type_code: str, model_code: str):
    instance_type = InstanceType.objects.select_related("provider").get(code=type_code)
    return services.launch_plan(LlmModel.objects.get(code=model_code), instance_type)


def test_llama_8b_on_one_l4_fits_with_a_bounded_context_a_token_and_a_block_volume(seed):
    plan = seeded("L4-1-24G", "meta-llama/Llama-3.1-8B-Instruct")

    assert plan.fits and 4096 <= plan.max_model_len <= 65536
    assert HF_TOKEN in plan.secret_env and plan.root_volume.type == "sbs_volume"


def test_llama_70b_is_refused_on_one_l40s_with_the_reason(seed):
    plan = seeded("L40S-1-48G", "meta-llama/Llama-3.1-70B-Instruct")

    assert not plan.fits
    assert "needs 160 GB of VRAM; L40S-1-48G has 1 x 48 GB (its weights alone are 141 GB)" in plan.reason


def test_llama_70b_fits_four_h100_sxm_with_a_volume_for_its_weights(seed):
    plan = seeded("H100-SXM-4-80G", "meta-llama/Llama-3.1-70B-Instruct")

    assert plan.fits and plan.tensor_parallel_size in (2, 4) and plan.root_volume.size_gb >= 150
    assert plan.root_volume.type == "sbs_volume"


def test_qwen_7b_on_eight_l4_uses_a_tensor_parallel_size_that_divides_its_28_heads(seed):
    plan = seeded("L4-8-24G", "Qwen/Qwen2.5-7B-Instruct")

    assert plan.fits and 28 % plan.tensor_parallel_size == 0
    assert plan.tensor_parallel_size * plan.data_parallel_size == 8


def test_render_s_is_refused_for_its_p100(seed):
    plan = seeded("RENDER-S", "Qwen/Qwen2.5-0.5B-Instruct")

    assert plan.kind == "gpu" and "P100" in plan.reason


@pytest.mark.parametrize("type_code", ["H100-1-80G", "H100-SXM-8-80G", "B300-SXM-8-288G", "L4-1-24G"])
def test_no_seeded_plan_asks_for_a_local_volume_on_a_block_only_type(seed, type_code):
    instance_type = InstanceType.objects.select_related("provider").get(code=type_code)
    for model in LlmModel.objects.filter(mock_only=False):
        plan = services.launch_plan(model, instance_type)
        if plan.fits:
            low, high = instance_type.root_volumes[plan.root_volume.type]
            assert plan.root_volume.type == "sbs_volume" and low <= plan.root_volume.size_gb <= high


# --- Hosts the operator runs (the static provider) --------------------------------------------


def test_a_host_the_operator_runs_is_planned_on_its_gpus_with_its_own_disk():
    plan = plan_launch(QWEN_7B, gpus(1, 24, root_volumes={}, operator_run=True))

    assert plan.fits and plan.image == VLLM_IMAGE and plan.tensor_parallel_size == 1
    # No volume is rented: the plan says how much of the operator's disk the model needs.
    assert (plan.root_volume.type, plan.root_volume.size_gb) == ("own", 80)


def test_a_host_the_operator_runs_may_serve_a_simulated_model_without_a_gpu_facts():
    echo = ModelSpec(code="mock-echo", max_context=8192, mock_only=True)

    plan = plan_launch(echo, TypeSpec(code="my-box", gpu_count=1, vram_per_gpu_gb=24, operator_run=True))

    assert plan.fits and plan.image == SIMULATOR_IMAGE and plan.root_volume.type == "own"


def test_a_host_the_operator_runs_still_gets_the_planners_refusal_as_advice():
    plan = plan_launch(LLAMA_70B, gpus(1, 24, root_volumes={}, operator_run=True))

    assert not plan.fits and plan.kind == "vram"
