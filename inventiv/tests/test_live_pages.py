"""Live pages (README, "Using it"): each page that shows changing state carries the live bar and a live part,
and a refresh aimed at that part gets it alone, with what changed since the page was loaded."""

import pytest

from autoscaling.tests.test_pools_pages import new_pool
from instances.status import Status
from instances.tests.factories import make_instance, mock_cloud  # noqa: F401 (fixture)
from monitoring.services import record_action

# (page, id of its live part, what the partial starts with)
LIVE_PAGES = [
    ("/", "dashboard-live", '<div id="dashboard-live" data-live>'),
    ("/instances/", "instances-live", '<section id="instances-live" data-live>'),
    ("/monitoring/", "log", '<section id="log" data-live>'),
    ("/traces/", "trace-rows", "<tr"),
    ("/models/", "models-live", '<section id="models-live" data-live>'),
    ("/finops/", "finops-live", '<div id="finops-live" data-live>'),
    ("/pools/", "pools-live", '<section id="pools-live" data-live>'),
    ("/pools/echo/", "pool-live", '<section id="pool-live"'),
]


def refresh(client, url: str, target: str):
    return client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target)


@pytest.fixture
def viewer(client, viewer_user, mock_cloud):
    client.force_login(viewer_user)
    new_pool()
    return client


@pytest.mark.parametrize(("url", "target", "start"), LIVE_PAGES)
def test_every_live_page_has_the_bar_and_refreshes_its_live_part_alone(viewer, settings, url, target, start):
    settings.LIVE_REFRESH_S = 7
    page = viewer.get(url).content.decode()
    assert 'data-live-bar data-interval="7"' in page and "/static/js/live.js" in page
    assert f'id="{target}"' in page

    part = refresh(viewer, url, target)

    html = part.content.decode().lstrip()
    assert part.status_code == 200 and html.startswith(start) if html else start == "<tr"
    assert "<html" not in html and "data-live-bar" not in html
    assert "HX-Target" in part["Vary"]


def test_the_instances_part_brings_new_rows_and_counts_live_instances_only(viewer):
    page = viewer.get("/instances/").content.decode()
    assert "0 active" in page
    ready = make_instance(status=Status.READY, with_server=False)
    booting = make_instance(status=Status.BOOTING, with_server=False)
    ended = [make_instance(status=status, with_server=False)
             for status in (Status.TERMINATED, Status.FAILED, Status.PROVISIONING_FAILED)]

    html = refresh(viewer, "/instances/", "instances-live").content.decode()

    assert '<span class="muted" data-count="active">2 active</span>' in html
    for instance in (ready, booting, *ended):
        assert f'id="instance-{instance.pk}"' in html
    assert "No instance." in html and 'id="no-instances" class="muted" hidden' in html


def test_the_dashboard_counts_live_instances_as_active(viewer):
    make_instance(status=Status.READY, with_server=False)
    make_instance(status=Status.TERMINATED, with_server=False)
    make_instance(status=Status.FAILED, with_server=False)

    html = refresh(viewer, "/", "dashboard-live").content.decode()

    assert '<div class="card stat" data-stat="active"><span class="value">1</span>' in html


def test_the_monitoring_part_brings_new_actions_with_the_filters_of_the_address(viewer):
    instance = make_instance(status=Status.READY, with_server=False)
    viewer.get(f"/monitoring/?instance={instance.pk}")
    record_action(action_type="INSTANCE_READY", component="orchestrator", instance_id=instance.pk, status="success")
    record_action(action_type="INSTANCE_READY", component="orchestrator", status="success")

    html = refresh(viewer, f"/monitoring/?instance={instance.pk}", "log").content.decode()

    assert html.count('class="log-row"') == 1


def test_older_rows_loaded_by_scrolling_hold_the_refresh_back(viewer):
    for _ in range(60):
        record_action(action_type="INSTANCE_READY", component="orchestrator", status="success")
    first = viewer.get("/monitoring/").content.decode()
    older = viewer.get("/monitoring/?offset=50", HTTP_HX_REQUEST="true").content.decode()
    assert "<tr id=\"log-" in first and " data-live-hold" not in first
    assert older.count("<tr id=\"log-") == older.count(" data-live-hold>") >= 10
