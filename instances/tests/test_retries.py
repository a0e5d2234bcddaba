"""Tasks that call a provider retry through Celery: transient errors only, backing off, and never sooner than
the provider asked (`Retry-After`)."""

import pytest
from celery.signals import task_retry

from instances.provisioning import provision_instance_task
from instances.retries import BACKOFF_BASE_S
from instances.status import Status
from instances.termination import terminate_instance, terminate_instance_task
from instances.tests.factories import (  # noqa: F401 (fixtures)
    committed,
    fresh,
    make_instance,
    mock_cloud,
    request_mock,
    servers_of,
)
from monitoring.models import ActionLog
from providers.base import TransientProviderError
from providers.mock import MockProvider

pytestmark = pytest.mark.django_db


@pytest.fixture
def retries():
    """(task name, countdown in seconds) of every retry Celery schedules, as its task_retry signal reports."""
    scheduled = []

    def record(sender=None, reason=None, **kwargs):
        scheduled.append((sender.name, reason.when))

    task_retry.connect(record, weak=False)
    yield scheduled
    task_retry.disconnect(record)


def fail_first(monkeypatch, method: str, *errors: Exception) -> None:
    """The Mock cloud's `method` raises `errors` one call after the other, then works."""
    real = getattr(MockProvider, method)
    pending = list(errors)

    def call(self, *args, **kwargs):
        if pending:
            raise pending.pop(0)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MockProvider, method, call)


def test_a_throttled_create_is_retried_after_the_wait_the_provider_asked_for(mock_cloud, monkeypatch, retries):
    fail_first(monkeypatch, "create_server", TransientProviderError("too many requests", retry_after=45))

    instance = request_mock()

    assert retries == [(provision_instance_task.name, 45)]
    assert fresh(instance).status == Status.READY
    assert servers_of(instance).count() == 1


def test_without_a_wait_from_the_provider_retries_back_off_exponentially(mock_cloud, monkeypatch, retries):
    fail_first(monkeypatch, "create_server", *[TransientProviderError("timed out") for _ in range(3)])

    instance = request_mock()

    waits = [wait for _, wait in retries]
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):  # full jitter: anywhere up to the attempt's ceiling
        assert 0 <= wait <= BACKOFF_BASE_S * 2**attempt
    assert fresh(instance).status == Status.READY


def test_a_terminate_the_provider_refuses_for_now_is_retried_when_it_says(mock_cloud, monkeypatch, retries,
                                                                          committed):
    instance = make_instance(status=Status.READY)
    fail_first(monkeypatch, "terminate_server", TransientProviderError("server is locked", retry_after=12))

    with committed():
        terminate_instance(instance, reason="operator request")

    assert retries == [(terminate_instance_task.name, 12)]
    assert fresh(instance).status == Status.TERMINATED
    steps = ActionLog.objects.filter(instance_id=instance.pk, action_type="PROVIDER_TERMINATE").order_by("id")
    assert list(steps.values_list("status", flat=True)) == ["failed", "success"]
