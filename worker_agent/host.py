"""Host figures through psutil: CPU, memory, root disk, network counters."""

import os
import socket
from typing import Any

import psutil

MIB = 1024 * 1024
GB = 1000**3
ROOT = "/"


def host_inventory() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "memory_total_mb": psutil.virtual_memory().total // MIB,
    }


class HostProbe:
    def __init__(self) -> None:
        # The first cpu_percent(None) call only sets the reference point; later calls are non-blocking.
        psutil.cpu_percent(interval=None)

    def sample(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(ROOT)
        network = psutil.net_io_counters()
        return {
            "cpu_pct": psutil.cpu_percent(interval=None),
            "memory_used_mb": (memory.total - memory.available) // MIB,
            "memory_total_mb": memory.total // MIB,
            "disk_used_gb": round(disk.used / GB, 2),
            "disk_total_gb": round(disk.total / GB, 2),
            "net_rx_bytes": network.bytes_recv if network else None,
            "net_tx_bytes": network.bytes_sent if network else None,
        }
