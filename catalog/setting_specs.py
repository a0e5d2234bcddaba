"""Every runtime setting the code reads, with its type, bounds and default (no Django imports)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SettingSpec:
    key: str
    value_type: str
    default: str
    description: str
    min_value: float | None = None
    max_value: float | None = None


# Every runtime setting the code reads, with its default. The fixture seeds the same rows; a missing row
# falls back to the default here so a fresh database still works.
SETTING_SPECS: dict[str, SettingSpec] = {
    spec.key: spec
    for spec in [
        SettingSpec("sweep_interval_s", "int", "10", "Seconds between beat sweeps (health, watchdog, terminator).", 1, 3600),
        SettingSpec("provision_requeue_after_s", "int", "30", "A provision with no progress for this long is re-queued.", 5, 3600),
        SettingSpec("provision_max_requeues", "int", "5", "How many times a lost provision is re-queued before it fails.", 0, 50),
        SettingSpec("startup_timeout_s", "int", "300", "Boot timeout for machines without the worker install.", 10, 86400),
        SettingSpec("startup_timeout_install_s", "int", "3600", "Boot timeout for machines that install the worker and download the model.", 60, 86400),
        SettingSpec("heartbeat_interval_s", "int", "5", "Seconds between worker heartbeats.", 1, 300),
        SettingSpec("heartbeat_stale_missed", "int", "3", "Missed heartbeats after which a worker is skipped by the router.", 1, 100),
        SettingSpec("heartbeat_lost_grace_s", "int", "180", "Seconds without heartbeats before a ready instance fails with HEARTBEAT_LOST.", 10, 86400),
        SettingSpec("orphan_grace_s", "int", "300", "A tagged server unknown to Inventiv is terminated after this many seconds.", 0, 86400),
        SettingSpec("drain_timeout_s", "int", "300", "Longest wait for in-flight requests before a draining instance is terminated.", 0, 86400),
        SettingSpec("mock_boot_delay_s", "float", "0", "Mock cloud: seconds a server takes to boot.", 0, 3600),
        SettingSpec("mock_deletion_delay_s", "float", "15", "Mock cloud: seconds a deletion takes to complete.", 0, 3600),
    ]
}
