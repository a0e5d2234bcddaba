"""The action-log filters the Monitoring page and the API share: short-id prefixes and time ranges."""

import uuid
from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from monitoring.filters import ActionLogFilter
from monitoring.models import ActionLog

pytestmark = pytest.mark.django_db
ONE = uuid.UUID("3f2a9c41-0000-4000-8000-000000000001")
SAME_PREFIX = uuid.UUID("3f2a9c41-ffff-4fff-bfff-ffffffffffff")
OTHER = uuid.UUID("3f2a9c42-0000-4000-8000-000000000000")


def log(instance_id=None, *, minutes_ago: float = 1) -> ActionLog:
    return ActionLog.objects.create(action_type="HEALTH_CHECK", component="orchestrator", status="success",
                                    instance_id=instance_id, created_at=timezone.now() - timedelta(minutes=minutes_ago))


def matching(query: str) -> tuple[bool, set]:
    filterset = ActionLogFilter(QueryDict(query), queryset=ActionLog.objects.all())
    valid = filterset.is_valid()
    return valid, ({row.instance_id for row in filterset.qs} if valid else filterset.errors)


@pytest.fixture
def logs():
    return [log(ONE), log(SAME_PREFIX), log(OTHER), log(None)]


def test_the_8_character_short_id_finds_the_instances_it_starts(logs):
    assert matching("instance=3f2a9c41") == (True, {ONE, SAME_PREFIX})
    assert matching("instance=3F2A9C41") == (True, {ONE, SAME_PREFIX})


def test_a_whole_id_with_or_without_dashes_finds_one_instance(logs):
    assert matching(f"instance={ONE}") == (True, {ONE})
    assert matching(f"instance={ONE.hex}") == (True, {ONE})
    assert matching("instance=3f2a9c41-ffff") == (True, {SAME_PREFIX})


@pytest.mark.parametrize("bad", ["3f2", "nope", "3f2a9c41zz", "x" * 40])
def test_what_is_not_an_id_prefix_is_refused_with_the_reason(logs, bad):
    valid, errors = matching(f"instance={bad}")
    assert not valid and "8-character ids" in str(errors["instance"])


def test_the_time_range_keeps_the_rows_of_the_last_window():
    recent, older = log(ONE, minutes_ago=10), log(OTHER, minutes_ago=90)
    assert matching("window=15m") == (True, {recent.instance_id})
    assert matching("window=24h") == (True, {recent.instance_id, older.instance_id})
    valid, errors = matching("window=3y")
    assert not valid and "window" in errors


def test_the_page_offers_the_filters_and_shows_labels_and_one_line_times(client, viewer_user, seed):
    client.force_login(viewer_user)
    log(ONE)
    html = client.get("/monitoring/", {"instance": "3f2a9c41", "window": "1h"}).content.decode()
    assert 'name="window"' in html and '<option value="1h" selected>last hour</option>' in html
    assert 'value="3f2a9c41"' in html and "first 8 characters" in html
    assert 'title="HEALTH_CHECK" data-action="HEALTH_CHECK">Health check</span>' in html
    assert '<td class="nowrap"><time' in html
    assert '<option value="HEALTH_CHECK">' in html and ">HEALTH_CHECK</option>" not in html
