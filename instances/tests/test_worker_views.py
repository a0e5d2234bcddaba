"""The worker's side of the Instances pages: the detail's Worker panel and GPU charts, the list's Heartbeat column."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from instances.status import Status
from instances.tests.factories import clock, make_instance, mock_cloud  # noqa: F401 (fixtures)
from instances.tests.worker_factories import heartbeat_payload
from monitoring.models import HeartbeatSample, WorkerState

HTMX = {"HTTP_HX_REQUEST": "true"}
GPU_CHARTS = ("gpu-utilization-chart", "gpu-memory-chart", "gpu-temperature-chart", "gpu-power-chart")


@pytest.fixture
def viewer(client, viewer_user):
    client.force_login(viewer_user)
    return client


def worker_state(instance, *, age_s: float = 3, **fields) -> WorkerState:
    """A WorkerState as a heartbeat `age_s` seconds ago leaves it (the worker_factories payload's values).
    Tests that read the age back on the page stop the clock, so a slow machine does not add a second."""
    payload = heartbeat_payload(instance)
    defaults = {
        "last_heartbeat_at": timezone.now() - timedelta(seconds=age_s), "status": WorkerState.WorkerStatus.READY,
        "in_flight": payload["in_flight"], "engine": payload["engine"], "gpus": payload["gpus"],
        "host": payload["host"], "agent_version": "0.1.0", "engine_version": "0.33.0+inventiv.sim", "heartbeats": 7,
    }
    return WorkerState.objects.create(instance_id=instance.pk, **{**defaults, **fields})


def samples(instance, minutes_ago=(50, 30, 2)) -> list[HeartbeatSample]:
    now = timezone.now()
    rows = [
        HeartbeatSample(instance_id=instance.pk, at=now - timedelta(minutes=m), resolution_s=60 if m > 10 else 0,
                        gpu_utilization_pct=10 + i, gpu_memory_used_mb=600 + i, gpu_temperature_c=40 + i,
                        gpu_power_w=70.5 + i)
        for i, m in enumerate(minutes_ago)
    ]
    # Older than the hour: left out of the charts.
    rows.append(HeartbeatSample(instance_id=instance.pk, at=now - timedelta(minutes=90), gpu_utilization_pct=99))
    return HeartbeatSample.objects.bulk_create(rows)


def chart_data(html: str) -> dict:
    start = html.index('<script id="worker-series" type="application/json">') + len(
        '<script id="worker-series" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


def test_the_detail_page_shows_the_worker_panel_and_its_chart_data(viewer, mock_cloud, clock):
    instance = make_instance(status=Status.READY, with_server=False)
    worker_state(instance, age_s=3, reason="warming up")
    samples(instance)

    html = viewer.get(f"/instances/{instance.pk}/").content.decode()

    assert 'id="instance-worker"' in html and 'data-worker-status="ready"' in html
    assert "last heartbeat 3 s ago" in html and 'data-heartbeat="fresh"' in html and "stale" not in html.split(
        'id="instance-worker"')[1].split("</section>")[0].replace("stale window", "")
    assert "warming up" in html and "0.1.0" in html and "0.33.0+inventiv.sim" in html
    assert 'data-metric="in_flight">3<' in html
    assert 'data-metric="running_waiting">2 / 1<' in html
    assert 'data-metric="kv_cache">41.0%<' in html
    assert "0.2 s / 0.45 s" in html and "0.024 s / 0.061 s" in html
    assert "3145728 / 786432" in html
    assert "NVIDIA L4" in html and "615 / 23034 MB" in html and "38 °C" in html and "80.4 / 72.0 W" in html
    for canvas in GPU_CHARTS:
        assert f'id="{canvas}"' in html
    data = chart_data(html)
    assert data["utilization"]["values"] == [10, 11, 12]  # both resolutions, oldest first, the 90-min one left out
    assert data["memory"]["values"] == [600, 601, 602]
    assert data["temperature"]["values"] == [40, 41, 42]
    assert data["power"]["values"] == [70.5, 71.5, 72.5]
    assert len(data["times"]) == 3 and data["power"]["unit"] == "W"
    assert 'data-live data-live-url="/instances/%s/worker/"' % instance.pk in html


def test_a_stale_worker_is_flagged_on_the_detail_page(viewer, mock_cloud):
    instance = make_instance(status=Status.READY, with_server=False)
    worker_state(instance, age_s=120)

    html = viewer.get(f"/instances/{instance.pk}/").content.decode()

    assert "last heartbeat 2 min ago" in html and 'data-heartbeat="stale"' in html and "stale: the router" in html
    assert 'id="no-samples"' in html and "gpu-utilization-chart" not in html


def test_without_a_worker_the_detail_says_so_instead_of_charts(viewer, mock_cloud):
    instance = make_instance(status=Status.READY, with_server=False)

    html = viewer.get(f"/instances/{instance.pk}/").content.decode()

    assert 'id="no-worker"' in html and "<code>none</code> runtime" in html
    assert "worker-series" not in html and "<canvas" not in html


def test_the_worker_partial_polls_until_the_instance_is_finished(viewer, mock_cloud, clock):
    ready = make_instance(status=Status.READY, with_server=False)
    worker_state(ready, age_s=4)
    samples(ready)

    response = viewer.get(f"/instances/{ready.pk}/worker/", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="instance-worker"')
    assert "last heartbeat 4 s ago" in html and "data-live" in html
    assert chart_data(html)["utilization"]["values"] == [10, 11, 12]
    assert "<h2>Timeline</h2>" not in html

    terminated = make_instance(status=Status.TERMINATED, with_server=False)
    html = viewer.get(f"/instances/{terminated.pk}/worker/", **HTMX).content.decode()
    assert 'id="no-worker"' in html and "data-live" not in html

    # A plain visit gets the whole page.
    assert viewer.get(f"/instances/{ready.pk}/worker/").url == f"/instances/{ready.pk}/"


def test_the_list_shows_heartbeat_freshness_in_one_query(viewer, mock_cloud, clock, django_assert_max_num_queries):
    fresh = make_instance(status=Status.READY, with_server=False)
    stale = make_instance(status=Status.READY, with_server=False)
    silent = make_instance(status=Status.BOOTING, with_server=False)
    worker_state(fresh, age_s=4)
    worker_state(stale, age_s=60)  # the stale window is 5 s x 3 missed heartbeats
    for _ in range(5):  # more rows with workers add no queries
        worker_state(make_instance(status=Status.READY, with_server=False), age_s=1)

    html = viewer.get("/instances/").content.decode()

    def cell(instance):
        row = html[html.index(f'id="instance-{instance.pk}"'):]
        row = row[:row.index("</tr>")]
        return row[row.index('<td class="heartbeat'):][:400]

    assert "<th>Heartbeat</th>" in html
    assert 'data-heartbeat="fresh"' in cell(fresh) and "4 s ago" in cell(fresh) and "stale" not in cell(fresh)
    assert 'class="heartbeat stale"' in cell(stale) and "60 s ago" in cell(stale)
    assert 'data-heartbeat="none"' in cell(silent) and "—" in cell(silent)

    with django_assert_max_num_queries(12) as captured:
        viewer.get("/instances/")
    assert sum("monitoring_workerstate" in q["sql"] for q in captured.captured_queries) == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_detail_page_draws_the_gpu_charts(seed, logged_in_page):
    instance = make_instance(status=Status.TERMINATED, with_server=False)  # finished: the panel does not poll
    worker_state(instance, age_s=2)
    samples(instance)
    page = logged_in_page

    page.goto(f"/instances/{instance.pk}/")
    page.wait_for_function("() => window.Chart !== undefined && Chart.getChart('gpu-power-chart') !== undefined")

    for canvas in GPU_CHARTS:
        assert page.evaluate(
            "id => { const c = Chart.getChart(document.getElementById(id)); "
            "return c !== undefined && c.data.datasets[0].data.length === 3; }", canvas)
