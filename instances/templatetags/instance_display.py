"""How the Instances pages show an instance: progress, DOM id, the actions offered, and its GPU charts.

`{% load instance_display %}`. The API's `progress_percent` reads the same table (instances/serializers.py).
"""

from __future__ import annotations

from django import template

from instances.lifecycle import can_transition
from instances.models import Instance
from instances.status import DRAINABLE, ENDED, OFFER_TERMINATE, SHUTDOWN, Status
from instances.status import status_family as family_of
from monitoring.models import HeartbeatSample

register = template.Library()

# How far along its way to serving (or to being gone) an instance in each status is, for progress bars.
PROGRESS_PERCENT = {
    Status.PROVISIONING: 10,
    Status.BOOTING: 30,
    Status.INSTALLING: 50,
    Status.STARTING: 70,
    Status.READY: 100,
    Status.DRAINING: 100,
    Status.TERMINATING: 50,
    Status.TERMINATED: 100,
    Status.ARCHIVED: 100,
    Status.PROVISIONING_FAILED: 0,
    Status.STARTUP_FAILED: 0,
    Status.FAILED: 0,
}
# The detail page's four GPU charts: (key, HeartbeatSample field, title, unit).
GPU_CHARTS = (
    ("utilization", "gpu_utilization_pct", "GPU utilisation", "%"),
    ("memory", "gpu_memory_used_mb", "GPU memory", "MB"),
    ("temperature", "gpu_temperature_c", "GPU temperature", "°C"),
    ("power", "gpu_power_w", "GPU power", "W"),
)


@register.filter
def progress_percent(status: str) -> int:
    """How far along an instance in `status` is, 0-100 (an unknown status is at 0)."""
    return PROGRESS_PERCENT.get(status, 0)


@register.filter
def dom_id(instance: Instance) -> str:
    """The id of the instance's row or panel in the page: what HTMX swaps and tests look for."""
    return f"instance-{instance.pk}"


@register.filter
def can_drain(instance: Instance) -> bool:
    return instance.status in DRAINABLE


@register.filter
def can_terminate(instance: Instance) -> bool:
    """Offered only where a server exists or may soon (never for a rejected request or an ended one)."""
    return instance.status in OFFER_TERMINATE


@register.filter
def can_archive(instance: Instance) -> bool:
    return can_transition(instance.status, Status.ARCHIVED)


@register.filter
def status_family(status: str) -> str:
    """The family of a status (live, transitional, failed, ended): the badge's CSS class is `status-<family>`."""
    return family_of(status)


@register.filter
def status_label(status: str) -> str:
    """How a status reads ("Provisioning failed"); an unknown one as it is."""
    return Status(status).label if status in Status.values else status


@register.filter
def expects_heartbeats(instance: Instance) -> bool:
    """Whether its machine should still be reporting: once told to shut down (termination asked for, gone,
    failed), a silent worker is expected, not a warning, and its last report is history."""
    return instance.status not in SHUTDOWN


@register.filter
def has_ended(instance: Instance) -> bool:
    """Nothing more happens to it on its own: its panels stop polling."""
    return instance.status in ENDED


@register.filter
def gpu_charts(samples: list[HeartbeatSample]) -> dict:
    """The GPU charts' data (static/js/charts.js `line` charts): {times: [iso...], <key>: {label, unit, values}}."""
    series: dict = {"times": [sample.at.isoformat() for sample in samples]}
    for key, field, title, unit in GPU_CHARTS:
        series[key] = {"label": title, "unit": unit, "values": [getattr(sample, field) for sample in samples]}
    return series
