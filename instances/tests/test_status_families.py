"""Status families (README, "Status colours"): one colour per family, shared by every page; ended instances
read as neutral history, with no heartbeat warning and no action that cannot apply."""

import pytest

from instances.status import (
    ENDED, FAILED, GONE, LIVE, OFFER_TERMINATE, SERVING, STATUS_COLORS, STATUS_FAMILIES, TRANSITIONAL, Family,
    Status, status_family,
)
from instances.templatetags.instance_display import can_terminate, expects_heartbeats
from instances.tests.factories import make_instance, mock_cloud  # noqa: F401 (fixture)
from instances.tests.test_worker_views import worker_state


def test_every_status_is_in_exactly_one_family():
    assert set(STATUS_FAMILIES) == set(Status.values)
    families = {family: {s for s, f in STATUS_FAMILIES.items() if f == family} for family in Family}
    assert families[Family.LIVE] == SERVING - TRANSITIONAL == {Status.READY}
    assert families[Family.TRANSITIONAL] == TRANSITIONAL
    assert families[Family.FAILED] == FAILED
    assert families[Family.ENDED] == GONE
    assert sum(len(members) for members in families.values()) == len(Status.values)


def test_a_family_has_one_colour_and_ended_is_neutral():
    assert {STATUS_COLORS[s] for s in TRANSITIONAL} == {"blue"}
    assert {STATUS_COLORS[s] for s in FAILED} == {"red"}
    assert STATUS_COLORS[Status.TERMINATED] == STATUS_COLORS[Status.ARCHIVED] == "gray"
    assert status_family("no-such-status") == Family.ENDED


def test_terminate_is_offered_only_where_a_server_may_exist():
    assert Status.PROVISIONING_FAILED not in OFFER_TERMINATE and not OFFER_TERMINATE & ENDED
    assert LIVE <= OFFER_TERMINATE and {Status.STARTUP_FAILED, Status.FAILED} <= OFFER_TERMINATE


@pytest.mark.django_db
def test_an_ended_row_is_calm(client, admin_user, mock_cloud):
    client.force_login(admin_user)
    ended = make_instance(status=Status.TERMINATED, with_server=False)
    rejected = make_instance(status=Status.PROVISIONING_FAILED, with_server=False)
    worker_state(ended, age_s=600)
    assert not can_terminate(ended) and not can_terminate(rejected) and not expects_heartbeats(ended)

    html = client.get("/instances/").content.decode()
    row = html[html.index(f'id="instance-{ended.pk}"'):]
    row = row[:row.index("</tr>")]
    assert 'class="badge status-ended"' in row and 'data-heartbeat="ended"' in row
    assert "⚠" not in row and ">Terminate<" not in row and ">Archive<" in row
    rejected_row = html[html.index(f'id="instance-{rejected.pk}"'):]
    assert ">Terminate<" not in rejected_row[:rejected_row.index("</tr>")]


@pytest.mark.django_db
def test_the_worker_of_an_ended_instance_is_history_not_a_warning(client, admin_user, mock_cloud):
    client.force_login(admin_user)
    ended = make_instance(status=Status.TERMINATED, with_server=False)
    worker_state(ended, age_s=600)

    html = client.get(f"/instances/{ended.pk}/").content.decode()

    assert 'class="badge status-ended" data-worker-status="ready">last reported: Ready' in html
    assert "stale" not in html and 'class="badge green"' not in html
