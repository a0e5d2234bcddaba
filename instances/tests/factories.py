"""Small builders for instance tests, the one thing tests may fake (the clock), and commits.

Tests run inside a transaction that never commits, so what the services enqueue on commit (their tasks,
eager in tests) runs only where a test says its work commits: `with committed():` around a service call,
and inside the helpers that stand for an outside request (`request_mock`, worker_factories' `post`). Only
tests whose threads or processes must see the data commit for real (`django_db(transaction=True)`); there
these blocks change nothing. Never nest them: each runs what was enqueued since it began.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from catalog.models import InstanceType, LlmModel, Provider, RuntimeSetting, Zone
from catalog.runtime_settings import update_setting
from catalog.setting_specs import SETTING_SPECS
from instances.models import Instance
from instances.status import Status
from instances.requests import request_instance
from monitoring.models import ActionLog
from providers.base import INVENTIV_TAG, ServerSpec, instance_tag, server_name
from providers.mock import MockProvider
from providers.models import MockServer

MOCK_REQUEST = {"provider": "mock", "zone": "mock-eu-1", "instance_type": "MOCK-GPU-S", "model": "mock-echo"}


class FakeClock:
    """Stands in for django.utils.timezone.now: time moves only when a test says so."""

    def __init__(self, start: datetime):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock(timezone.now())
    # Every module calls timezone.now() through the module, so this moves the whole process's clock.
    monkeypatch.setattr(timezone, "now", fake)
    return fake


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed():` runs, when the block ends, what its work enqueued on commit, and what that
    enqueues in turn, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def run_on_commit():
    """`committed()` for helpers, which have no fixtures: the same Django machinery
    (pytest-django's django_capture_on_commit_callbacks is TestCase.captureOnCommitCallbacks)."""
    return TestCase.captureOnCommitCallbacks(execute=True)


@pytest.fixture
def scaleway_cloud(mock_cloud, monkeypatch, settings):
    """The Scaleway adapter, configured from the environment as in production (workers open to the control
    plane's test range, no Hugging Face token), talking to a loopback fake of the Scaleway API."""
    from providers.testing.fake_scaleway import TEST_ACCESS_KEY, TEST_CONTROL_PLANE_CIDR, TEST_PROJECT_ID, FakeScaleway

    settings.CONTROL_PLANE_CIDRS = [TEST_CONTROL_PLANE_CIDR]
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": ""}
    with FakeScaleway() as fake:
        for name, value in {"SCW_ACCESS_KEY": TEST_ACCESS_KEY, "SCW_SECRET_KEY": fake.secret_key,
                            "SCW_DEFAULT_PROJECT_ID": TEST_PROJECT_ID, "SCW_API_URL": fake.url}.items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def mock_cloud(seed):
    """The catalog seed with a Mock cloud that boots and deletes at once."""
    set_setting("mock_boot_delay_s", 0)
    set_setting("mock_deletion_delay_s", 0)


def set_setting(key: str, value) -> None:
    spec = SETTING_SPECS[key]
    row, _ = RuntimeSetting.objects.get_or_create(
        key=key, defaults={"value_type": spec.value_type, "value": spec.default, "default": spec.default,
                           "min_value": spec.min_value, "max_value": spec.max_value},
    )
    update_setting(row, value=value)


def request_mock(**overrides) -> Instance:
    """A Mock request as the API makes one: it commits, so its provision has run (eagerly) when this returns."""
    with run_on_commit():
        instance = request_instance(**{**MOCK_REQUEST, **overrides})
    instance.refresh_from_db()
    return instance


def fresh(instance: Instance) -> Instance:
    return Instance.objects.get(pk=instance.pk)


def action_types(instance: Instance) -> list[str]:
    rows = ActionLog.objects.filter(instance_id=instance.pk).order_by("created_at", "id")
    return list(rows.values_list("action_type", flat=True))


def servers_of(instance: Instance):
    return MockServer.objects.filter(instance_id=str(instance.pk))


def make_instance(*, status: str = Status.READY, with_server: bool = True, started: bool = True,
                  **fields) -> Instance:
    """A Mock instance in `status`, with a real Mock server (created and powered on) unless told otherwise."""
    instance = Instance.objects.create(
        provider=Provider.objects.get(code="mock"),
        zone=Zone.objects.get(code="mock-eu-1"),
        instance_type=InstanceType.objects.get(code="MOCK-GPU-S"),
        model=LlmModel.objects.get(code="mock-echo"),
        requested=dict(MOCK_REQUEST),
        status=status,
        **fields,
    )
    if with_server:
        server = create_mock_server(str(instance.pk), started=started)
        instance.provider_server_id, instance.public_ip = server.server_id, server.public_ip
        instance.save(update_fields=["provider_server_id", "public_ip"])
    return instance


def create_mock_server(instance_id: str, *, started: bool = True, tags: list[str] | None = None):
    """A server as Inventiv (or a killed earlier attempt of it) would have created it."""
    provider = MockProvider()
    server = provider.create_server(ServerSpec(
        instance_id=instance_id, zone="mock-eu-1", commercial_type="MOCK-GPU-S", name=server_name(instance_id),
        tags=tags if tags is not None else [INVENTIV_TAG, instance_tag(instance_id)],
    ))
    if started:
        provider.start_server(server.server_id, zone="mock-eu-1")
    return server
