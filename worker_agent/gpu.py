"""GPU inventory and metrics through NVML; every figure is optional, and no GPU means no entries.

Boards differ in what they report (`NVMLError_NotSupported` for power on some, temperature on
others), so each call is guarded on its own and a failure becomes a null, never a crash.
"""

import logging
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
MILLIWATTS_PER_WATT = 1000.0


def _load_nvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class GpuProbe:
    """Initialises NVML once; without a driver (or the package) it simply reports no GPU."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nvml = nvml if nvml is not None else _load_nvml()
        self._handles: list[Any] = []
        self._names: list[str | None] = []
        self.available = False
        if self._nvml is None:
            return
        try:
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded, ...
            logger.info("no GPU metrics: %s", exc)
            self._handles = []
            return
        self.available = True
        self._names = [self._call(self._nvml.nvmlDeviceGetName, h) for h in self._handles]

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            value = function(*args)
        except Exception:  # any NVMLError: this board does not report it
            return None
        return value.decode() if isinstance(value, bytes) else value

    def inventory(self) -> list[dict[str, Any]]:
        return [
            {"index": index, "name": self._names[index], "memory_total_mb": self._memory(handle)[1]}
            for index, handle in enumerate(self._handles)
        ]

    def sample(self) -> list[dict[str, Any]]:
        nvml = self._nvml
        samples = []
        for index, handle in enumerate(self._handles):
            utilization = self._call(nvml.nvmlDeviceGetUtilizationRates, handle)
            used_mb, total_mb = self._memory(handle)
            power_mw = self._call(nvml.nvmlDeviceGetPowerUsage, handle)
            limit_mw = self._call(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            samples.append(
                {
                    "index": index,
                    "name": self._names[index],
                    "utilization_pct": getattr(utilization, "gpu", None),
                    "memory_used_mb": used_mb,
                    "memory_total_mb": total_mb,
                    "temperature_c": self._call(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
                    "power_w": power_mw / MILLIWATTS_PER_WATT if power_mw is not None else None,
                    "power_limit_w": limit_mw / MILLIWATTS_PER_WATT if limit_mw is not None else None,
                }
            )
        return samples

    def _memory(self, handle: Any) -> tuple[int | None, int | None]:
        memory = self._call(self._nvml.nvmlDeviceGetMemoryInfo, handle)
        if memory is None:
            return None, None
        return memory.used // MIB, memory.total // MIB

    def close(self) -> None:
        if self.available:
            self._call(self._nvml.nvmlShutdown)
            self.available = False
