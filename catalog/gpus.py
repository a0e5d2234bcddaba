"""CUDA compute capability by GPU name, as NVIDIA lists it (https://developer.nvidia.com/cuda-gpus and
https://developer.nvidia.com/cuda-legacy-gpus). No Django imports: the fixture generator reads it too.

Names are matched the way Scaleway writes them (`gpu_info.gpu_name`: "L4", "H100-PCIe", "B300-SXM") and the
way the seed does ("H100 PCIe"): case, spaces and dashes do not matter.
"""

from decimal import Decimal

COMPUTE_CAPABILITY = {
    "P100": Decimal("6.0"),
    "RTX 3070": Decimal("8.6"),
    "L4": Decimal("8.9"),
    "L40S": Decimal("8.9"),
    "H100 PCIE": Decimal("9.0"),
    "H100 SXM": Decimal("9.0"),
    "H200": Decimal("9.0"),
    "B200": Decimal("10.0"),
    "B300 SXM": Decimal("10.3"),
}


def compute_capability(gpu_name: str) -> Decimal | None:
    """The compute capability of `gpu_name`, or None for a GPU this table does not know."""
    return COMPUTE_CAPABILITY.get(" ".join(gpu_name.upper().replace("-", " ").split()))
