"""The launch-plan table of a provider: every instance type against every model, as Markdown.

`manage.py launch_plans` prints it; the README's "Launch plans" section is its output for the seed.
"""

from catalog.launch_plan import REFUSAL_KINDS, LaunchPlan, Refusal
from catalog.models import InstanceType, LlmModel
from catalog.services import launch_plan

KIB = 1024


def cell(plan: LaunchPlan | Refusal) -> str:
    """`26k·1` (context, tensor parallel), `32k·1×8` with data-parallel replicas, `no: vram` when refused."""
    if not plan.fits:
        return f"no: {plan.kind}"
    text = f"{plan.max_model_len // KIB}k·{plan.tensor_parallel_size}"
    if plan.data_parallel_size > 1:
        text += f"×{plan.data_parallel_size}"
    if plan.gpu_memory_utilization > 0.9:
        text += "*"
    return text


def launch_plan_table(*, provider: str) -> str:
    """One row per model (with the root disk its plans ask for), one column per instance type of `provider`."""
    types = list(InstanceType.objects.select_related("provider").filter(provider__code=provider))
    # GPU families from the cheapest GPU to the dearest, each from its smallest machine to its largest.
    per_gpu: dict[str, float] = {}
    for instance_type in types:
        price = float(instance_type.cost_per_hour) / instance_type.gpu_count
        per_gpu[instance_type.gpu_model] = min(price, per_gpu.get(instance_type.gpu_model, price))
    types.sort(key=lambda t: (per_gpu[t.gpu_model], t.gpu_model, t.gpu_count, t.code))
    models = list(LlmModel.objects.filter(mock_only=False).order_by("-task", "code"))  # generators, then embedders
    lines = [
        "| Model | Disk | " + " | ".join(t.code for t in types) + " |",
        "|---|---|" + "---|" * len(types),
    ]
    refused = set()
    for model in models:
        plans = [launch_plan(model, instance_type) for instance_type in types]
        refused |= {plan.kind for plan in plans if not plan.fits}
        disks = {plan.root_volume.size_gb for plan in plans if plan.fits}
        disk = f"{max(disks)} GB" if disks else "–"
        label = model.code + (" (embed)" if model.task == LlmModel.Task.EMBED else "")
        lines.append(f"| {label} | {disk} | " + " | ".join(cell(plan) for plan in plans) + " |")
    # The Mock cloud's own refusals are explained where they appear (the Mock table), not under every table.
    legend = [
        "",
        "A cell is the planned `--max-model-len` (in units of 1,024 tokens) and `--tensor-parallel-size`; "
        "`×N`: N data-parallel replicas use the remaining GPUs; `*`: planned at `--gpu-memory-utilization` 0.95 "
        "(0.90 otherwise). Disk: the root volume (block storage) the model's plans ask for.",
        "Refusals: " + "; ".join(f"`{kind}`: {meaning}" for kind, meaning in REFUSAL_KINDS.items()
                                 if kind not in ("simulator", "mock-only") or kind in refused) + ".",
    ]
    return "\n".join(lines + legend)
