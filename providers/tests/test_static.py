"""The static provider: a machine the operator runs is attached once per instance, reads as running where
it was registered, and is detached (released, never destroyed) by a terminate."""

import pytest

from providers.base import INVENTIV_TAG, ProviderError, ServerSpec, ServerState, instance_tag
from providers.models import StaticMachine
from providers.registry import get_provider

pytestmark = pytest.mark.django_db

INSTANCE = "22222222-2222-4222-8222-222222222222"


def spec(**extra) -> ServerSpec:
    fields = {"instance_id": INSTANCE, "zone": "home-lab", "commercial_type": "L4-1-24G",
              "name": f"inventiv-{INSTANCE}", "tags": [INVENTIV_TAG, instance_tag(INSTANCE)], "address": "10.0.0.7",
              **extra}
    return ServerSpec(**fields)


def test_attaching_twice_for_one_instance_gives_one_machine_running_at_its_address():
    static = get_provider("static")

    first = static.create_server(spec())
    again = static.create_server(spec())

    assert first.server_id == again.server_id and StaticMachine.objects.count() == 1
    assert first.state == ServerState.RUNNING and first.public_ip == "10.0.0.7" and first.instance_id == INSTANCE
    assert static.start_server(first.server_id, zone="home-lab").public_ip == "10.0.0.7"
    assert [server.server_id for server in static.list_servers(zone="home-lab")] == [first.server_id]


def test_a_host_without_an_address_is_refused():
    with pytest.raises(ProviderError):
        get_provider("static").create_server(spec(address=""))


def test_terminate_detaches_the_machine_and_destroys_nothing():
    static = get_provider("static")
    server = static.create_server(spec())

    static.terminate_server(server.server_id, zone="home-lab")
    static.terminate_server(server.server_id, zone="home-lab")  # harmless twice
    static.delete_volumes(server.server_id, zone="home-lab")

    assert static.get_server(server.server_id, zone="home-lab") is None
    assert static.list_servers(zone="home-lab") == []
    machine = StaticMachine.objects.get()
    assert machine.released_at is not None  # the row stays: the machine was released, not deleted
    assert static.get_server("not-a-uuid", zone="home-lab") is None
    assert static.fetch_catalog(zones=["home-lab"]) == []


def test_syncing_the_static_catalog_changes_nothing(seed):
    from catalog.models import InstanceType, InstanceTypeZone, Provider, Region, Zone
    from catalog.sync import sync_provider_catalog

    static = Provider.objects.create(code="static", name="Your own machines", adapter="static")
    zone = Zone.objects.create(region=Region.objects.create(provider=static, code="self-hosted", name="S"),
                               code="home-lab")
    box = InstanceType.objects.create(provider=static, code="L4-1-24G", gpu_count=1, vram_per_gpu_gb=24, vcpu=8,
                                      ram_gb=48, cost_per_hour="0.5")
    InstanceTypeZone.objects.create(instance_type=box, zone=zone)

    result = sync_provider_catalog(static)

    assert result.offers == 0 and InstanceTypeZone.objects.get(instance_type=box).availability == "available"
