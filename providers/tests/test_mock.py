"""The Mock cloud: deterministic state from stored timestamps and an injected clock, idempotent creates,
and faults persisted in the database."""

from datetime import datetime, timedelta, timezone

import pytest

from providers.base import INVENTIV_TAG, ProviderError, ServerSpec, ServerState, instance_tag
from providers.mock import MockOperationError, MockProvider, clear_faults, inject_fault, vanish_server
from providers.mock_console import CRASH_ENGINE, DELETE_SERVER, KILL_AGENT, operate, view_server
from providers.models import MockFault, MockServer
from providers.registry import get_provider

pytestmark = pytest.mark.django_db

ZONE = "mock-eu-1"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cloud(clock):
    return MockProvider(boot_delay_s=10, deletion_delay_s=15, clock=clock)


def spec(instance_id="11111111-1111-4111-8111-111111111111", *, zone=ZONE, commercial_type="MOCK-GPU-S", **extra):
    return ServerSpec(instance_id=instance_id, zone=zone, commercial_type=commercial_type,
                      name=f"inventiv-{instance_id}", tags=[INVENTIV_TAG, instance_tag(instance_id)], **extra)


def test_the_registry_builds_the_mock_adapter_with_its_options():
    adapter = get_provider("mock", boot_delay_s=1, deletion_delay_s=2)

    assert isinstance(adapter, MockProvider)
    assert adapter.boot_delay == timedelta(seconds=1) and adapter.deletion_delay == timedelta(seconds=2)


def test_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="unknown Mock runtime"):
        MockProvider(runtime="kubernetes")


def test_a_new_server_is_stopped_tagged_and_on_loopback(cloud):
    server = cloud.create_server(spec(runtime_env={"INVENTIV_WORKER_TOKEN": "t"}))

    assert server.state == ServerState.STOPPED
    assert server.public_ip == "127.0.0.1"
    assert server.created_at == T0
    assert server.instance_id == "11111111-1111-4111-8111-111111111111"
    assert MockServer.objects.get(pk=server.server_id).runtime_env == {"INVENTIV_WORKER_TOKEN": "t"}


def test_creating_again_for_the_same_instance_returns_the_same_server(cloud):
    first = cloud.create_server(spec(runtime_env={"v": "1"}))
    second = cloud.create_server(spec(runtime_env={"v": "2"}))

    assert second.server_id == first.server_id
    assert MockServer.objects.count() == 1
    # Not powered on yet: it will boot with the newest values.
    assert MockServer.objects.get().runtime_env == {"v": "2"}


def test_a_server_boots_after_the_boot_delay_measured_on_the_clock(cloud, clock):
    server = cloud.create_server(spec())
    cloud.start_server(server.server_id, zone=ZONE)

    assert cloud.get_server(server.server_id, zone=ZONE).state == ServerState.STARTING
    clock.advance(10)
    assert cloud.get_server(server.server_id, zone=ZONE).state == ServerState.RUNNING
    assert cloud.get_server(server.server_id, zone=ZONE).metadata == {"runtime": "none"}


def test_the_power_on_answers_with_the_server_as_get_server_sees_it(cloud, clock):
    server = cloud.create_server(spec())

    started = cloud.start_server(server.server_id, zone=ZONE)

    assert started == cloud.get_server(server.server_id, zone=ZONE)
    assert (started.state, started.public_ip) == (ServerState.STARTING, "127.0.0.1")
    clock.advance(10)
    assert cloud.start_server(server.server_id, zone=ZONE).state == ServerState.RUNNING  # a retry answers too


def test_starting_twice_does_not_restart_the_boot(cloud, clock):
    server = cloud.create_server(spec())
    cloud.start_server(server.server_id, zone=ZONE)
    clock.advance(9)
    cloud.start_server(server.server_id, zone=ZONE)
    clock.advance(1)

    assert cloud.get_server(server.server_id, zone=ZONE).state == ServerState.RUNNING


def test_state_comes_from_the_stored_timestamps_not_from_who_asks(cloud, clock):
    server = cloud.create_server(spec())
    cloud.start_server(server.server_id, zone=ZONE)
    later = Clock()
    later.advance(60)

    assert MockProvider(clock=later).get_server(server.server_id, zone=ZONE).state == ServerState.RUNNING
    assert cloud.get_server(server.server_id, zone=ZONE).state == ServerState.STARTING


def test_a_terminated_server_is_listed_as_stopping_until_the_deletion_delay_passes(cloud, clock):
    server = cloud.create_server(spec())
    cloud.start_server(server.server_id, zone=ZONE)
    cloud.terminate_server(server.server_id, zone=ZONE)

    assert cloud.get_server(server.server_id, zone=ZONE).state == ServerState.STOPPING
    clock.advance(14)
    cloud.terminate_server(server.server_id, zone=ZONE)  # asking again does not push the deletion back
    clock.advance(1)

    assert cloud.get_server(server.server_id, zone=ZONE) is None
    assert cloud.list_servers(zone=ZONE) == []


def test_terminating_an_unknown_server_is_not_an_error(cloud):
    cloud.terminate_server("not-a-uuid", zone=ZONE)
    cloud.terminate_server("22222222-2222-4222-8222-222222222222", zone=ZONE)


def test_deleting_volumes_is_recorded_on_the_server(cloud):
    server = cloud.create_server(spec())

    cloud.delete_volumes(server.server_id, zone=ZONE)

    assert MockServer.objects.get().volumes_deleted_at == T0


def test_listing_filters_by_zone_and_tag(cloud):
    mine = cloud.create_server(spec())
    cloud.create_server(spec("33333333-3333-4333-8333-333333333333", zone="mock-eu-2"))
    cloud.create_server(ServerSpec(instance_id="x", zone=ZONE, commercial_type="MOCK-GPU-S", name="other",
                                   tags=["not-ours"]))

    assert [server.server_id for server in cloud.list_servers(zone=ZONE)] == [mine.server_id]
    assert [server.name for server in cloud.list_servers(zone=ZONE, tag="not-ours")] == ["other"]


def test_a_vanished_server_is_gone(cloud):
    server = cloud.create_server(spec())

    assert vanish_server(server.server_id, clock=cloud.now)
    assert cloud.get_server(server.server_id, zone=ZONE) is None
    assert not vanish_server(server.server_id, clock=cloud.now)


@pytest.mark.parametrize(("kind", "code"), [
    ("out_of_stock", "PROVIDER_OUT_OF_STOCK"),
    ("quota_exceeded", "PROVIDER_QUOTA_EXCEEDED"),
    ("create_fails", None),
])
def test_create_faults_raise_permanent_errors_with_their_code(cloud, kind, code):
    inject_fault(kind)

    with pytest.raises(ProviderError) as raised:
        cloud.create_server(spec())

    assert raised.value.permanent and raised.value.code == code
    assert MockServer.objects.count() == 0


def test_a_fault_is_used_up_after_its_remaining_count(cloud):
    inject_fault("create_fails", permanent=False, remaining=2)

    for _ in range(2):
        with pytest.raises(ProviderError) as raised:
            cloud.create_server(spec())
        assert not raised.value.permanent
    cloud.create_server(spec())

    assert MockFault.objects.get().remaining == 0


def test_a_fault_matches_only_its_zone_and_type(cloud):
    inject_fault("out_of_stock", zone="mock-eu-2", remaining=None)
    inject_fault("out_of_stock", commercial_type="MOCK-4GPU-M", remaining=None)

    cloud.create_server(spec())
    with pytest.raises(ProviderError):
        cloud.create_server(spec("44444444-4444-4444-8444-444444444444", commercial_type="MOCK-4GPU-M"))


def test_an_unlimited_fault_lasts_until_cleared(cloud):
    inject_fault("start_fails", remaining=None)
    server = cloud.create_server(spec())

    for _ in range(3):
        with pytest.raises(ProviderError):
            cloud.start_server(server.server_id, zone=ZONE)
    assert clear_faults() == 1
    cloud.start_server(server.server_id, zone=ZONE)


def test_a_vanish_fault_removes_the_server_some_time_after_it_runs(cloud, clock):
    inject_fault("vanish", delay_s=30)
    server = cloud.create_server(spec())
    cloud.start_server(server.server_id, zone=ZONE)

    clock.advance(39)
    assert cloud.get_server(server.server_id, zone=ZONE).state == ServerState.RUNNING
    clock.advance(1)
    assert cloud.get_server(server.server_id, zone=ZONE) is None


def test_an_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError, match="unknown Mock fault"):
        inject_fault("meteor_strike")


def test_the_catalog_lists_the_mock_types_available_in_every_zone(cloud):
    offers = cloud.fetch_catalog(zones=[ZONE])

    assert [offer.code for offer in offers] == ["MOCK-GPU-S", "MOCK-4GPU-M"]
    assert offers[0].availability == {ZONE: "available"}


def test_the_machine_environment_is_stored_encrypted():
    server = MockProvider().create_server(spec(runtime_env={"INVENTIV_WORKER_TOKEN": "secret-token-value"}))

    stored = MockServer.objects.filter(pk=server.server_id).values_list("runtime_env_encrypted", flat=True).get()

    assert stored and "secret-token-value" not in stored
    assert MockServer.objects.get(pk=server.server_id).runtime_env == {"INVENTIV_WORKER_TOKEN": "secret-token-value"}


def test_a_start_falls_back_fault_accepts_the_power_on_then_the_server_is_stopped_until_powered_on_again(cloud, clock):
    inject_fault("start_falls_back")
    server = cloud.create_server(spec())

    answer = cloud.start_server(server.server_id, zone=ZONE)

    assert answer.state == ServerState.STARTING
    seen = cloud.get_server(server.server_id, zone=ZONE)
    assert seen.state == ServerState.STOPPED and seen.metadata["state_detail"] == "out of stock"
    cloud.start_server(server.server_id, zone=ZONE)
    clock.advance(10)
    seen = cloud.get_server(server.server_id, zone=ZONE)
    assert seen.state == ServerState.RUNNING and "state_detail" not in seen.metadata


def test_the_console_deletes_a_server_which_is_then_gone():
    cloud = MockProvider()  # the console acts now, on the wall clock
    server = MockServer.objects.get(pk=cloud.create_server(spec()).server_id)

    view = operate(server, DELETE_SERVER)

    assert view.state == ServerState.GONE
    assert cloud.get_server(str(server.pk), zone=ZONE) is None
    with pytest.raises(MockOperationError, match="is deleted"):
        operate(server, DELETE_SERVER)


def test_the_console_refuses_to_kill_the_agent_of_a_machine_that_runs_none():
    cloud = MockProvider()
    info = cloud.create_server(spec())
    cloud.start_server(info.server_id, zone=ZONE)
    server = MockServer.objects.get(pk=info.server_id)

    with pytest.raises(MockOperationError, match="runs no worker agent"):
        operate(server, KILL_AGENT)
    with pytest.raises(MockOperationError, match="runs no engine"):
        operate(server, CRASH_ENGINE)
    assert view_server(server).agent_running is None
