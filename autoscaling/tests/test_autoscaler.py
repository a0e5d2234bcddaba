import functools
from datetime import timedelta

import pytest
from django.utils import timezone

from autoscaling.holds import report_held_requests
from autoscaling.models import Pool, PoolSample
from autoscaling.selectors import pools_for_routing
from autoscaling.services import autoscale_pool, autoscale_pools
from autoscaling.tests.factories import make_pool
from instances.models import Instance
from instances.status import ErrorCode, Status
from instances.termination import fail_instance
from instances.tests.factories import make_instance, mock_cloud  # noqa: F401
from monitoring.models import ActionLog, WorkerState
from providers.models import MockFault

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed(): ...` runs what the block enqueued on commit (provisioning, drains: eager Celery
    tasks), as the commit of a real transaction would."""
    return functools.partial(django_capture_on_commit_callbacks, execute=True)


def members(pool, *statuses):
    rows = Instance.objects.filter(pool=pool)
    return list(rows.filter(status__in=statuses) if statuses else rows)


def decisions(pool):
    return list(ActionLog.objects.filter(action_type="SCALE_DECISION", metadata__pool=pool.name).order_by("id"))


def busy(instance, in_flight: int, *, at=None):
    WorkerState.objects.update_or_create(instance_id=instance.pk, defaults={
        "last_heartbeat_at": at or timezone.now(), "status": "ready", "in_flight": in_flight,
        "engine": {"running": in_flight, "waiting": 0},
    })


def test_it_starts_an_instance_at_once_when_the_router_holds_a_request_at_zero(mock_cloud, committed):
    pool = make_pool()
    with committed():
        assert autoscale_pool(pool.pk).desired_size == 0

    with committed():
        report_held_requests(pool.pk, 2)

    [instance] = members(pool)
    assert instance.status == Status.READY
    pool.refresh_from_db()
    assert pool.desired_size == 1 and pool.held_requests == 2
    assert pool.last_reason == "hold: 2 requests waiting at zero"
    last = decisions(pool)[-1]
    assert last.component == "autoscaler"
    assert last.metadata["inputs"]["held_requests"] == 2
    assert last.metadata["actions"] == [{"action": "request", "instance": str(instance.pk),
                                         "choice": "MOCK-GPU-S in mock-eu-1"}]


def test_later_reports_of_held_requests_update_the_count_without_waking_the_pool_again(mock_cloud, committed):
    pool = make_pool()
    with committed():
        report_held_requests(pool.pk, 1)
    requested = len(members(pool))

    with committed():
        report_held_requests(pool.pk, 5)
        report_held_requests(pool.pk, 0)

    pool.refresh_from_db()
    assert pool.held_requests == 0 and pool.held_at is not None
    assert len(members(pool)) == requested == 1


# Real commits: within one tick the autoscaler reads the outcome of the provisioning that each request's
# commit ran (eager Celery), and moves to the next choice when it was refused.
@pytest.mark.django_db(transaction=True)
def test_it_grows_on_the_second_choice_when_the_first_is_out_of_stock(mock_cloud):
    pool = make_pool(choices=(("MOCK-GPU-S", "mock-eu-1"), ("MOCK-4GPU-M", "mock-eu-1")), min_size=1)
    MockFault.objects.create(kind=MockFault.Kind.OUT_OF_STOCK, commercial_type="MOCK-GPU-S", remaining=None)

    autoscale_pool(pool.pk)

    failed, = members(pool, Status.PROVISIONING_FAILED)
    ready, = members(pool, Status.READY)
    assert failed.error_code == ErrorCode.PROVIDER_OUT_OF_STOCK
    assert ready.instance_type.code == "MOCK-4GPU-M"

    # The exhausted choice is not tried again on the next growth while its backoff lasts.
    Pool.objects.filter(pk=pool.pk).update(min_size=2)
    autoscale_pool(pool.pk)
    assert len(members(pool, Status.PROVISIONING_FAILED)) == 1
    assert [m.instance_type.code for m in members(pool, Status.READY)] == ["MOCK-4GPU-M"] * 2


def test_it_replaces_a_member_that_lost_its_heartbeat_to_keep_the_minimum(mock_cloud, committed):
    pool = make_pool(min_size=1, scale_to_zero=False)
    with committed():
        autoscale_pool(pool.pk)
    [first] = members(pool, Status.READY)

    with committed():
        fail_instance(first, to=Status.FAILED, code=ErrorCode.HEARTBEAT_LOST, message="silent",
                      action_type="HEARTBEAT_LOST")
    with committed():
        autoscale_pool(pool.pk, now=timezone.now() + timedelta(seconds=10))

    replacement, = members(pool, Status.READY)
    assert replacement.pk != first.pk
    pool.refresh_from_db()
    assert pool.last_reason.startswith("replace 1 lost (HEARTBEAT_LOST)")


def test_it_drains_the_least_busy_member_when_the_load_goes_away(mock_cloud, committed):
    pool = make_pool(min_size=1, scale_to_zero=False)
    quiet, loaded = (make_instance(status=Status.READY, pool=pool) for _ in range(2))
    start = timezone.now()

    drained = []
    for second in range(0, 120, 2):
        now = start + timedelta(seconds=second)
        busy(quiet, 0, at=now)
        busy(loaded, 1, at=now)
        with committed():
            autoscale_pool(pool.pk, now=now)
        drained = members(pool, Status.DRAINING, Status.TERMINATING, Status.TERMINATED)
        if drained:
            break

    assert [m.pk for m in drained] == [quiet.pk]
    assert members(pool, Status.READY) == [loaded]
    assert ActionLog.objects.filter(instance_id=quiet.pk, action_type="REQUEST_DRAIN").exists()


def test_it_cancels_members_still_starting_before_draining_ready_ones(mock_cloud, committed):
    pool = make_pool(min_size=0, scale_to_zero=True, idle_period_s=5)
    ready = make_instance(status=Status.READY, pool=pool)
    booting = make_instance(status=Status.BOOTING, pool=pool)
    start = timezone.now()

    for second in range(0, 120, 2):
        busy(ready, 0, at=start + timedelta(seconds=second))
        with committed():
            decision = autoscale_pool(pool.pk, now=start + timedelta(seconds=second))
        if decision.desired_size < 2:
            break

    assert Instance.objects.get(pk=booting.pk).status in (Status.TERMINATING, Status.TERMINATED)


def test_a_pool_claimed_by_another_worker_is_left_alone(mock_cloud, committed):
    pool = make_pool(min_size=1)
    Pool.objects.filter(pk=pool.pk).update(claimed_until=timezone.now() + timedelta(seconds=30))

    with committed():
        assert autoscale_pool(pool.pk) is None
        assert autoscale_pools() == 0
    assert members(pool) == []


def test_every_tick_leaves_a_sample_and_changes_leave_a_decision(mock_cloud, committed):
    pool = make_pool(min_size=1)

    with committed():
        autoscale_pools()
    with committed():
        autoscale_pools()

    assert PoolSample.objects.filter(pool=pool).count() == 2
    [decision] = decisions(pool)
    assert decision.metadata["size"] == 0 and decision.metadata["desired"] == 1


def test_a_disabled_pool_is_not_scaled(mock_cloud, committed):
    pool = make_pool(min_size=1, enabled=False)

    with committed():
        assert autoscale_pools() == 0
    assert members(pool) == []


def test_the_router_directory_lists_enabled_pools_by_model(mock_cloud):
    pool = make_pool(hold_timeout_s=45, hold_queue_size=7)
    make_pool(name="off", enabled=False)

    assert pools_for_routing() == {"mock-echo": {"pool": "echo", "pool_id": pool.pk, "can_grow": True,
                                                 "hold_timeout_s": 45.0, "queue_size": 7}}
