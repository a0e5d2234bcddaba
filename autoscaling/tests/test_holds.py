"""Held requests wake a pool at rest once the report commits, and only the first report does."""

import pytest

from autoscaling.holds import report_held_requests
from autoscaling.tests.factories import make_pool
from instances.models import Instance
from instances.tests.factories import mock_cloud  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_the_first_held_request_wakes_the_pool_after_the_report_commits(mock_cloud, django_capture_on_commit_callbacks):
    pool = make_pool()

    with django_capture_on_commit_callbacks() as wakes:
        report_held_requests(pool.pk, 2)
    assert len(wakes) == 1 and not Instance.objects.filter(pool=pool).exists()  # nothing before the commit

    wakes[0]()

    pool.refresh_from_db()
    assert pool.held_requests == 2 and pool.desired_size == 1
    assert Instance.objects.filter(pool=pool).count() == 1


def test_reports_while_requests_already_wait_only_update_the_count(mock_cloud, django_capture_on_commit_callbacks):
    pool = make_pool()
    with django_capture_on_commit_callbacks():
        report_held_requests(pool.pk, 1)

    with django_capture_on_commit_callbacks() as wakes:
        report_held_requests(pool.pk, 5)

    pool.refresh_from_db()
    assert wakes == [] and pool.held_requests == 5


def test_a_report_for_a_deleted_pool_changes_nothing(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as wakes:
        report_held_requests(999_999, 3)
    assert wakes == []
