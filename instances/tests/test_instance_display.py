"""How the Instances pages show an instance: progress, DOM id, the actions offered, GPU chart data."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template

from instances.models import Instance
from instances.status import Status
from instances.templatetags.instance_display import (
    can_archive,
    can_drain,
    can_terminate,
    dom_id,
    gpu_charts,
    has_ended,
    progress_percent,
)
from monitoring.models import HeartbeatSample


def test_progress_grows_on_the_way_to_serving_and_failures_sit_at_zero():
    on_the_way = [Status.PROVISIONING, Status.BOOTING, Status.INSTALLING, Status.STARTING, Status.READY]
    assert [progress_percent(status) for status in on_the_way] == [10, 30, 50, 70, 100]
    assert {progress_percent(s) for s in (Status.PROVISIONING_FAILED, Status.STARTUP_FAILED, Status.FAILED)} == {0}
    assert progress_percent("no-such-status") == 0
    assert all(0 <= progress_percent(status) <= 100 for status in Status.values)


def test_an_instance_row_is_found_by_its_dom_id():
    instance = Instance(id=uuid.UUID("0f8e2a6c-1234-4abc-8def-001122334455"))
    assert dom_id(instance) == "instance-0f8e2a6c-1234-4abc-8def-001122334455"


@pytest.mark.parametrize(("status", "drain", "terminate", "archive"), [
    (Status.READY, True, True, False),
    (Status.BOOTING, False, True, False),
    (Status.DRAINING, False, True, False),
    (Status.TERMINATING, False, False, False),
    (Status.TERMINATED, False, False, True),
    (Status.PROVISIONING_FAILED, False, False, True),  # a rejected request owns no server
    (Status.ARCHIVED, False, False, False),
])
def test_the_actions_offered_follow_the_lifecycle(status, drain, terminate, archive):
    instance = Instance(status=status)
    assert (can_drain(instance), can_terminate(instance), can_archive(instance)) == (drain, terminate, archive)


def test_only_ended_instances_stop_their_panels_polling():
    assert has_ended(Instance(status=Status.TERMINATED)) and has_ended(Instance(status=Status.PROVISIONING_FAILED))
    assert not has_ended(Instance(status=Status.READY)) and not has_ended(Instance(status=Status.TERMINATING))


def test_gpu_chart_data_has_one_aligned_series_per_chart_with_its_unit():
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    samples = [
        HeartbeatSample(at=start, gpu_utilization_pct=10, gpu_memory_used_mb=600, gpu_temperature_c=40, gpu_power_w=70.5),
        HeartbeatSample(at=start + timedelta(minutes=1), gpu_utilization_pct=None, gpu_memory_used_mb=601),
    ]

    charts = gpu_charts(samples)

    assert charts["times"] == ["2025-01-01T12:00:00+00:00", "2025-01-01T12:01:00+00:00"]
    assert charts["utilization"] == {"label": "GPU utilisation", "unit": "%", "values": [10, None]}
    assert charts["memory"]["values"] == [600, 601] and charts["temperature"]["unit"] == "°C"
    assert charts["power"] == {"label": "GPU power", "unit": "W", "values": [70.5, None]}
    assert gpu_charts([])["times"] == []


def test_the_library_loads_in_a_template():
    instance = Instance(status=Status.STARTING)
    html = Template(
        "{% load instance_display %}{{ instance.status|progress_percent }}"
        "{% if instance|can_terminate %} terminable{% endif %}{% if instance|can_drain %} drainable{% endif %}"
    ).render(Context({"instance": instance}))
    assert html == "70 terminable"
