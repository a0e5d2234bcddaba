"""GPU (NVML) and host probes: every figure optional, nothing crashes without a GPU."""

import subprocess
import sys
from types import SimpleNamespace

from worker_agent.gpu import GpuProbe
from worker_agent.host import HostProbe, host_inventory
from worker_agent.memory import release_freed_memory
from worker_agent.tests.conftest import REPO_ROOT


class NVMLError(Exception):
    pass


class NVMLErrorNotSupported(NVMLError):
    pass


def not_supported(*args):
    raise NVMLErrorNotSupported("Not Supported")


def fake_nvml(**overrides):
    """An NVML with two boards; the edge of the system, so a stand-in is fair here."""
    functions = dict(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetName=lambda h: b"NVIDIA L4" if h == "h0" else "NVIDIA L40S",
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=24 * 1024**3, used=6 * 1024**3, free=0),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=87, memory=40),
        nvmlDeviceGetTemperature=lambda h, sensor: 61,
        nvmlDeviceGetPowerUsage=lambda h: 71500,
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 72000,
    )
    functions.update(overrides)
    return SimpleNamespace(**functions)


def test_it_reads_this_machines_gpus_or_reports_none_without_a_driver():
    probe = GpuProbe()  # CI has no NVIDIA driver; a GPU machine reports its boards
    inventory, sample = probe.inventory(), probe.sample()
    assert len(inventory) == len(sample)
    assert probe.available or inventory == []
    assert all(entry["memory_total_mb"] for entry in inventory)
    probe.close()


def test_it_reports_no_gpu_when_nvml_fails_to_initialise():
    def fail():
        raise NVMLError("Driver Not Loaded")

    assert GpuProbe(fake_nvml(nvmlInit=fail)).sample() == []


def test_it_reads_every_gpu_metric_in_the_heartbeat_units():
    probe = GpuProbe(fake_nvml())
    assert probe.inventory() == [
        {"index": 0, "name": "NVIDIA L4", "memory_total_mb": 24576},
        {"index": 1, "name": "NVIDIA L40S", "memory_total_mb": 24576},
    ]
    assert probe.sample()[0] == {
        "index": 0, "name": "NVIDIA L4", "utilization_pct": 87, "memory_used_mb": 6144, "memory_total_mb": 24576,
        "temperature_c": 61, "power_w": 71.5, "power_limit_w": 72.0,
    }


def test_it_reports_null_for_each_metric_a_board_does_not_support():
    probe = GpuProbe(fake_nvml(nvmlDeviceGetPowerUsage=not_supported, nvmlDeviceGetTemperature=not_supported,
                               nvmlDeviceGetUtilizationRates=not_supported))
    sample = probe.sample()[1]
    assert sample["power_w"] is None and sample["temperature_c"] is None and sample["utilization_pct"] is None
    assert sample["memory_used_mb"] == 6144 and sample["power_limit_w"] == 72.0


def test_it_samples_the_host():
    sample = HostProbe().sample()
    assert sample["memory_total_mb"] > 0 and sample["disk_total_gb"] > 0 and sample["net_rx_bytes"] >= 0
    assert 0 <= sample["cpu_pct"] <= 100
    assert host_inventory()["cpu_count"] >= 1


def test_the_agent_imports_neither_django_nor_any_inventiv_app():
    code = (
        "import sys, worker_agent.__main__, worker_agent.simulator.__main__; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'rest_framework', 'celery', 'inventiv', 'catalog', 'monitoring', 'providers', 'instances', "
        "'router', 'autoscaling', 'finops'}); print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_hands_freed_heap_memory_back_without_failing():
    assert release_freed_memory() in (True, False)
