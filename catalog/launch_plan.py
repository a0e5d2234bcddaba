"""The launch planner: everything a machine needs to serve a model on an instance type, or why it cannot.

`plan_launch(model, instance_type)` is pure: plain values in (`ModelSpec`, `TypeSpec`), a `LaunchPlan` or a
`Refusal` out, no database and no clock. Compatibility in the whole product means "the planner finds a plan"
(README, "Launch plans"); the provider, cloud-init, the dashboard and the API all read the same plan.

The memory rule is vLLM's: on each GPU, weights / tensor-parallel size + the engine's own working memory
(activations, CUDA graphs, communication buffers) + the KV cache must fit in `gpu_memory_utilization` of the
GPU's memory, and vLLM refuses to start unless the KV cache holds one sequence of `--max-model-len` tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

GB = 10**9  # Scaleway and Hugging Face count storage and memory sizes in decimal gigabytes
KV_BYTES_PER_VALUE = 2  # bf16/fp16 KV cache, vLLM's default for these models
# The fraction of each GPU's memory vLLM may use (its default); plans use the higher step only when nothing
# fits at the default: a dedicated machine runs nothing else on its GPUs.
GPU_MEMORY_UTILIZATION_STEPS = (0.90, 0.95)
# What vLLM's profiling run measures beside weights and KV cache on each GPU (peak activations, CUDA graphs,
# NCCL and cuBLAS workspaces): 1 to 2 GB for the seeded models; planned at the top of that range.
ENGINE_OVERHEAD_GB = 2.0
MIN_USEFUL_CONTEXT = 4096  # below this a chat model with a system prompt and history is of little use
CONTEXT_STEP = 1024  # planned context lengths are rounded down to a whole number of these

# Current vLLM images (CUDA 13, `vllm serve` as entry point) are built for compute capability 7.5 and newer
# (TORCH_CUDA_ARCH_LIST "7.5 8.0 8.6 8.9 9.0 10.0 11.0 12.0+PTX" in vLLM's docker/versions.json).
VLLM_IMAGE = "vllm/vllm-openai:v0.31.0"
VLLM_MIN_COMPUTE_CAPABILITY = Decimal("7.5")
# The Mock cloud runs the vLLM-protocol simulator (worker_agent/simulator), not an image.
SIMULATOR_IMAGE = "simulator"
MOCK_ROOT_VOLUME_GB = 10
# The root "volume" of a host the operator runs: its own disk, of which the plan says how much the model needs.
OWN_DISK = "own"

# Root disk: the GPU OS image, the unpacked engine image, the weights as the Hugging Face cache keeps them
# (plus room for a download in progress) and a margin for logs; rounded up to whole steps.
OS_DISK_GB = 20
ENGINE_IMAGE_DISK_GB = 25
WEIGHTS_DISK_FACTOR = 1.2
DISK_MARGIN_GB = 10
DISK_STEP_GB = 10
# Root volume types in order of preference: block storage survives a reboot and every GPU type accepts it.
ROOT_VOLUME_PREFERENCE = ("sbs_volume", "l_ssd")

HF_TOKEN = "HF_TOKEN"
TASK_GENERATE, TASK_EMBED = "generate", "embed"
MAX_TENSOR_PARALLEL = 8


@dataclass(frozen=True)
class ModelSpec:
    """What the planner needs to know about a model (catalog `LlmModel`)."""

    code: str
    task: str = TASK_GENERATE
    weights_gb: float = 0.0
    layers: int = 0
    attention_heads: int = 0
    kv_heads: int = 0
    head_size: int = 0
    max_context: int = 0
    vram_required_gb: int = 0  # the catalog's floor: fewer GB of VRAM in all than this is refused at once
    gated: bool = False
    mock_only: bool = False
    allow_simulator: bool = False

    @property
    def has_shape(self) -> bool:
        return all((self.weights_gb, self.layers, self.attention_heads, self.kv_heads, self.head_size,
                    self.max_context))


@dataclass(frozen=True)
class TypeSpec:
    """What the planner needs to know about an instance type (catalog `InstanceType`)."""

    code: str
    gpu_count: int
    vram_per_gpu_gb: int
    is_mock: bool = False
    # A host the operator runs (the static provider): the plan is advice, the root disk is the operator's.
    operator_run: bool = False
    gpu_model: str = ""
    compute_capability: Decimal | None = None
    # Allowed root volume types -> (min GB, max GB), as the provider's catalog says.
    root_volumes: dict[str, tuple[int, int]] = field(default_factory=dict)
    engine_image: str = ""  # set only to override the image chosen for the compute capability

    @property
    def total_vram_gb(self) -> int:
        return self.gpu_count * self.vram_per_gpu_gb


@dataclass(frozen=True)
class RootVolume:
    type: str
    size_gb: int


@dataclass(frozen=True)
class LaunchPlan:
    image: str
    tensor_parallel_size: int
    data_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    root_volume: RootVolume
    secret_env: tuple[str, ...]
    args: tuple[str, ...]  # the engine's arguments, model first (`vllm serve <args>`)
    kv_cache_tokens: int  # tokens the KV cache of one replica holds
    fits: bool = True
    reason: str = ""

    @property
    def engine_flags(self) -> tuple[str, ...]:
        """The arguments after the model (the agent passes the model itself)."""
        return self.args[1:]


@dataclass(frozen=True)
class Refusal:
    reason: str
    kind: str = ""  # one of REFUSAL_KINDS: what stood in the way, for tables and filters
    fits: bool = False


# Why a pair has no plan, in the order the planner checks.
REFUSAL_KINDS = {
    "simulator": "Mock machines serve only simulated models and models allowed on the simulator",
    "mock-only": "a simulated model runs only on Mock machines",
    "vram": "fewer GB of VRAM in all than the model's floor",
    "shape": "the catalog lacks the model's shape",
    "gpu": "no engine image for this GPU's compute capability",
    "disk": "no root volume large enough",
    "parallel": "no tensor parallel size divides the model's heads",
    "memory": "the weights do not fit beside vLLM's working memory",
    "context": "the KV cache left holds fewer tokens than a useful context",
}


def plan_launch(model: ModelSpec, instance_type: TypeSpec) -> LaunchPlan | Refusal:
    """The plan that serves `model` on `instance_type`, or a Refusal saying why none exists.

    On a host the operator runs (`operator_run`) the plan is advice: the operator starts vLLM (or, to try
    Inventiv without a GPU, the simulator for a simulated model), and the disk is theirs, so the plan names
    the space the model needs on it instead of a volume to rent.
    """
    if instance_type.is_mock or (instance_type.operator_run and model.mock_only):
        return _simulator_plan(model, instance_type)
    if model.mock_only:
        return Refusal(f"{model.code} is simulated and runs only on Mock machines", "mock-only")
    refused = _vram_floor(model, instance_type)
    if refused:
        return refused
    if not model.has_shape:
        return Refusal(f"{model.code} has no shape in the catalog (weights, layers, heads, head size, context): "
                       "the planner cannot size it", "shape")
    image = _engine_image(instance_type)
    if isinstance(image, Refusal):
        return image
    volume = (RootVolume(type=OWN_DISK, size_gb=root_disk_gb(model)) if instance_type.operator_run
              else _root_volume(model, instance_type))
    if isinstance(volume, Refusal):
        return volume
    fit = _fit_memory(model, instance_type)
    if isinstance(fit, Refusal):
        return fit
    tp, utilization, max_len, kv_tokens = fit
    dp = instance_type.gpu_count // tp
    args = [model.code, "--tensor-parallel-size", str(tp)]
    if dp > 1:
        args += ["--data-parallel-size", str(dp)]
    args += ["--max-model-len", str(max_len), "--gpu-memory-utilization", f"{utilization:.2f}"]
    if model.task == TASK_EMBED:
        # Decoder-based embedding models (Qwen3-Embedding) load as generators unless told otherwise.
        args += ["--runner", "pooling", "--convert", "embed"]
    return LaunchPlan(
        image=image, tensor_parallel_size=tp, data_parallel_size=dp, max_model_len=max_len,
        gpu_memory_utilization=utilization, root_volume=volume, secret_env=_secret_env(model), args=tuple(args),
        kv_cache_tokens=kv_tokens,
    )


def _simulator_plan(model: ModelSpec, instance_type: TypeSpec) -> LaunchPlan | Refusal:
    if not (model.mock_only or model.allow_simulator):
        return Refusal(f"{model.code} is a real model: Mock machines serve it only when allow_simulator is set",
                       "simulator")
    refused = _vram_floor(model, instance_type)
    if refused:
        return refused
    context = model.max_context or MIN_USEFUL_CONTEXT
    return LaunchPlan(
        image=SIMULATOR_IMAGE, tensor_parallel_size=1, data_parallel_size=1, max_model_len=context,
        gpu_memory_utilization=GPU_MEMORY_UTILIZATION_STEPS[0],
        root_volume=RootVolume(type=OWN_DISK if instance_type.operator_run else ROOT_VOLUME_PREFERENCE[0],
                               size_gb=MOCK_ROOT_VOLUME_GB),
        secret_env=(), args=(model.code, "--max-model-len", str(context)), kv_cache_tokens=context,
    )


def _vram_floor(model: ModelSpec, instance_type: TypeSpec) -> Refusal | None:
    if instance_type.total_vram_gb >= model.vram_required_gb:
        return None
    reason = (f"{model.code} needs {model.vram_required_gb} GB of VRAM; {instance_type.code} has "
              f"{instance_type.gpu_count} x {instance_type.vram_per_gpu_gb} GB")
    if model.weights_gb:
        reason += f" (its weights alone are {model.weights_gb:.0f} GB)"
    return Refusal(reason, "vram")


def _engine_image(instance_type: TypeSpec) -> str | Refusal:
    if instance_type.engine_image:
        return instance_type.engine_image
    gpu = instance_type.gpu_model or "its GPU"
    capability = instance_type.compute_capability
    if capability is None:
        return Refusal(f"{instance_type.code}: the compute capability of {gpu} is not in the catalog, so no "
                       "engine image can be chosen", "gpu")
    if Decimal(capability) < VLLM_MIN_COMPUTE_CAPABILITY:
        return Refusal(f"unsupported on this GPU: {instance_type.code} has {gpu} (compute capability "
                       f"{capability}); current vLLM images need {VLLM_MIN_COMPUTE_CAPABILITY} or newer", "gpu")
    return VLLM_IMAGE


def root_disk_gb(model: ModelSpec) -> int:
    """The root disk a machine needs for `model`: OS, engine image, weights and margin, in whole steps."""
    wanted = OS_DISK_GB + ENGINE_IMAGE_DISK_GB + model.weights_gb * WEIGHTS_DISK_FACTOR + DISK_MARGIN_GB
    return math.ceil(wanted / DISK_STEP_GB) * DISK_STEP_GB


def _root_volume(model: ModelSpec, instance_type: TypeSpec) -> RootVolume | Refusal:
    allowed = [kind for kind in ROOT_VOLUME_PREFERENCE if kind in instance_type.root_volumes]
    if not allowed:
        return Refusal(f"{instance_type.code} allows no root volume type Inventiv knows "
                       f"({', '.join(ROOT_VOLUME_PREFERENCE)})", "disk")
    needed = root_disk_gb(model)
    for kind in allowed:
        low, high = instance_type.root_volumes[kind]
        if needed <= high:
            return RootVolume(type=kind, size_gb=max(needed, low))
    largest = max(instance_type.root_volumes[kind][1] for kind in allowed)
    return Refusal(f"{model.code} needs a {needed} GB root volume; {instance_type.code} allows at most {largest} GB",
                   "disk")


def tensor_parallel_candidates(model: ModelSpec, gpu_count: int) -> list[int]:
    """Tensor parallel sizes vLLM accepts for `model` on `gpu_count` GPUs, smallest first.

    A size must divide the attention heads; KV heads are split when there are at least as many as GPUs,
    and replicated otherwise, which vLLM allows only when the size is a multiple of the KV heads. Powers
    of two only: they divide every seeded model's MLP width, and the remaining GPUs run whole replicas.
    """
    sizes = []
    size = 1
    while size <= min(gpu_count, MAX_TENSOR_PARALLEL):
        heads_split = model.attention_heads % size == 0
        kv_ok = model.kv_heads % size == 0 or size % model.kv_heads == 0
        if heads_split and kv_ok and gpu_count % size == 0:
            sizes.append(size)
        size *= 2
    return sizes


def kv_bytes_per_token(model: ModelSpec, tensor_parallel: int) -> int:
    """KV cache bytes one token takes on each GPU: 2 (K and V) x layers x KV heads there x head size x 2 B."""
    kv_heads_here = max(1, model.kv_heads // tensor_parallel)
    return 2 * model.layers * kv_heads_here * model.head_size * KV_BYTES_PER_VALUE


def _fit_memory(model: ModelSpec, instance_type: TypeSpec) -> tuple[int, float, int, int] | Refusal:
    """(tensor parallel, memory utilisation, max model len, KV tokens) or a Refusal.

    The smallest tensor parallel size that gives the model its whole context wins (the other GPUs serve
    as data-parallel replicas); when none does, the one with the longest context. The default memory
    utilisation is tried first on every size.
    """
    candidates = tensor_parallel_candidates(model, instance_type.gpu_count)
    if not candidates:
        return Refusal(f"no tensor parallel size fits {model.code} ({model.attention_heads} attention heads, "
                       f"{model.kv_heads} KV heads) on {instance_type.gpu_count} GPUs", "parallel")
    for utilization in GPU_MEMORY_UTILIZATION_STEPS:
        fits = []
        for tp in candidates:
            tokens = _kv_tokens(model, instance_type, tp, utilization)
            max_len = min(model.max_context, tokens // CONTEXT_STEP * CONTEXT_STEP or tokens)
            if max_len >= min(MIN_USEFUL_CONTEXT, model.max_context):
                fits.append((tp, utilization, max_len, tokens))
        full = [fit for fit in fits if fit[2] == model.max_context]
        if full:
            return full[0]
        if fits:
            return max(fits, key=lambda fit: (fit[2], -fit[0]))
    return _shortfall(model, instance_type, candidates[-1], GPU_MEMORY_UTILIZATION_STEPS[-1])


def _kv_tokens(model: ModelSpec, instance_type: TypeSpec, tp: int, utilization: float) -> int:
    usable = instance_type.vram_per_gpu_gb * GB * utilization
    free = usable - model.weights_gb * GB / tp - ENGINE_OVERHEAD_GB * GB
    return max(0, int(free // kv_bytes_per_token(model, tp)))


def _shortfall(model: ModelSpec, instance_type: TypeSpec, tp: int, utilization: float) -> Refusal:
    per_gpu = model.weights_gb / tp
    usable = instance_type.vram_per_gpu_gb * utilization
    tokens = _kv_tokens(model, instance_type, tp, utilization)
    where = f"{instance_type.code} ({instance_type.gpu_count} x {instance_type.vram_per_gpu_gb} GB)"
    if per_gpu + ENGINE_OVERHEAD_GB >= usable:
        return Refusal(f"{model.code} does not fit {where}: {per_gpu:.1f} GB of weights per GPU at tensor parallel "
                       f"{tp} plus {ENGINE_OVERHEAD_GB:.0f} GB of engine memory exceed the {usable:.1f} GB vLLM "
                       "may use", "memory")
    return Refusal(f"{model.code} on {where}: only {tokens} tokens of KV cache fit beside the weights, below the "
                   f"useful minimum of {MIN_USEFUL_CONTEXT}", "context")


def _secret_env(model: ModelSpec) -> tuple[str, ...]:
    return (HF_TOKEN,) if model.gated else ()
