import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import ActionLog
from monitoring.views import PAGE_SIZE

URL = "/monitoring/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def make_logs(count: int, **fields) -> list[ActionLog]:
    start = timezone.now() - timedelta(hours=1)
    return ActionLog.objects.bulk_create(
        ActionLog(
            action_type=fields.get("action_type", "HEALTH_CHECK"), component=fields.get("component", "orchestrator"),
            status=fields.get("status", "success"), instance_id=fields.get("instance_id"),
            created_at=start + timedelta(seconds=i), duration_ms=i,
        )
        for i in range(count)
    )


@pytest.fixture
def signed_in(client, viewer_user):
    client.force_login(viewer_user)
    return client


def test_the_monitoring_page_needs_a_signed_in_user(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_it_shows_the_newest_actions_first_with_counts_per_status(signed_in, seed):
    make_logs(3)
    newest = make_logs(1, action_type="PROVIDER_START", status="failed")[0]
    response = signed_in.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(f'id="log-{newest.pk}"') < html.index('class="log-row"', html.index(f'id="log-{newest.pk}"') + 1)
    assert 'data-status="success">success 3<' in html and 'data-status="failed">failed 1<' in html
    assert 'class="badge orange"' in html  # PROVIDER_* actions are orange in the seed's action types


def test_it_filters_by_component_status_type_and_instance(signed_in, seed):
    instance = uuid.uuid4()
    make_logs(2, component="worker")
    wanted = make_logs(1, component="api", status="failed", action_type="REQUEST_CREATE", instance_id=instance)[0]
    response = signed_in.get(URL, {"component": "api", "status": "failed", "action_type": "REQUEST_CREATE",
                                   "instance": str(instance)})
    assert [row.pk for row in response.context["rows"]] == [wanted.pk]
    assert response.context["stats"]["filtered"] == 1


def test_a_bad_filter_shows_the_error_and_no_rows(signed_in, seed):
    make_logs(2)
    response = signed_in.get(URL, {"instance": "nope"})
    assert response.status_code == 200
    assert list(response.context["rows"]) == []
    assert "instance:" in response.content.decode()


def test_the_last_row_loads_the_next_page_when_revealed(signed_in, seed):
    logs = make_logs(PAGE_SIZE + 5, component="worker")
    html = signed_in.get(URL, {"component": "worker"}).content.decode()
    assert html.count('class="log-row"') == PAGE_SIZE
    assert 'hx-trigger="revealed"' in html and f"offset={PAGE_SIZE}" in html

    more = signed_in.get(URL, {"component": "worker", "offset": PAGE_SIZE}, **HTMX)
    fragment = more.content.decode()
    assert "<html" not in fragment and "<table" not in fragment
    assert [row.pk for row in more.context["rows"]] == [log.pk for log in reversed(logs[:5])]
    assert 'hx-trigger="revealed"' not in fragment


def test_the_filter_form_swaps_only_the_log_section(signed_in, seed):
    make_logs(2)
    fragment = signed_in.get(URL, {"status": "success"}, HTTP_HX_TARGET="log", **HTMX).content.decode()
    assert fragment.lstrip().startswith('<section id="log" data-live>') and "<html" not in fragment


def test_each_row_carries_its_json_for_the_copy_button(signed_in, seed):
    log = make_logs(1, action_type="PROVIDER_CREATE")[0]
    row = signed_in.get(URL).context["rows"][0]
    assert json.loads(row.as_json)["id"] == log.pk
    assert json.loads(row.as_json)["action_type"] == "PROVIDER_CREATE"


def test_the_admin_lists_action_logs_and_edits_none(client, admin_user, seed):
    client.force_login(admin_user)
    log = make_logs(1, action_type="PROVIDER_CREATE")[0]
    assert "PROVIDER_CREATE" in client.get("/admin/monitoring/actionlog/").content.decode()
    assert client.get(f"/admin/monitoring/actionlog/{log.pk}/change/").status_code == 200
    assert client.post(f"/admin/monitoring/actionlog/{log.pk}/change/", {"action_type": "X"}).status_code == 403
    assert client.get("/admin/monitoring/actionlog/add/").status_code == 403
