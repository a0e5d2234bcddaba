"""Catalog sync: the seed catalog refreshed from the fake Scaleway API, through the real adapter and SDK."""

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from catalog.models import InstanceType, InstanceTypeZone, Provider, Zone
from catalog.sync import sync_provider_catalog
from providers.base import ProviderError
from providers.testing.fake_scaleway import (  # noqa: F401 - fake_scaleway is a fixture
    HTML_BAD_GATEWAY,
    TEST_ACCESS_KEY,
    TEST_PROJECT_ID,
    TEST_SECRET_KEY,
    fake_scaleway,
)

SCALEWAY_GPU_TYPES = 16  # the seed's Scaleway types, all sold by the fake in the seed's zones


def scaleway() -> Provider:
    return Provider.objects.get(code="scaleway")


def offer(type_code: str, zone_code: str) -> InstanceTypeZone:
    return InstanceTypeZone.objects.get(instance_type__code=type_code, zone__code=zone_code)


def test_a_catalog_matching_the_seed_changes_nothing(seed, fake_scaleway):
    result = sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    assert result.offers == SCALEWAY_GPU_TYPES
    assert (result.updated, result.created, result.skipped) == (0, 0, 0)
    assert (result.zone_offers_created, result.zone_offers_updated, result.zone_offers_withdrawn) == (0, 0, 0)


def test_it_refreshes_the_price_and_specs_of_known_types(seed, fake_scaleway):
    fake_scaleway.set_price("L40S-1-48G", 1.39987)
    fake_scaleway.server_types["H100-1-80G"][0] = 26  # vCPUs

    result = sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    assert result.updated == 2
    l40s = InstanceType.objects.get(code="L40S-1-48G")
    assert l40s.cost_per_hour == Decimal("1.3999")
    assert l40s.allocation_params["image"] == "ubuntu_noble_gpu_os_13_nvidia"  # operator settings stay
    assert InstanceType.objects.get(code="H100-1-80G").vcpu == 26


def test_it_creates_new_gpu_types_inactive_and_skips_cpu_types(seed, fake_scaleway):
    fake_scaleway.add_server_type("H200-1-141G", ncpus=24, ram_gib=240, gpus=1, gpu_name="H200", gpu_memory_gib=141,
                                  hourly_price=3.5, zones=("fr-par-2",))

    result = sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    assert result.created == 1
    h200 = InstanceType.objects.get(code="H200-1-141G")
    assert not h200.active
    assert (h200.gpu_count, h200.vram_per_gpu_gb, h200.vcpu, h200.ram_gb) == (1, 141, 24, 240)
    assert (h200.gpu_model, h200.cost_per_hour) == ("H200", Decimal("3.5"))
    assert h200.compute_capability == Decimal("9.0")  # from the GPU's name, so the planner can pick an image
    assert h200.root_volumes == {"sbs_volume": [5, 10000]}  # no local volume: the catalog's volumes_constraint
    assert offer("H200-1-141G", "fr-par-2").availability == InstanceTypeZone.Availability.AVAILABLE
    assert not InstanceType.objects.filter(code__in=["DEV1-S", "PLAY2-NANO"]).exists()


def test_it_sets_the_availability_of_zone_offers(seed, fake_scaleway):
    fake_scaleway.set_availability("pl-waw-2", "L40S-1-48G", "scarce")
    fake_scaleway.set_availability("fr-par-2", "H100-1-80G", "shortage")
    fake_scaleway.withdraw("pl-waw-2", "L4-1-24G")

    result = sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    assert (result.zone_offers_updated, result.zone_offers_withdrawn) == (2, 1)
    assert offer("L40S-1-48G", "pl-waw-2").availability == InstanceTypeZone.Availability.SCARCE
    assert offer("L40S-1-48G", "fr-par-2").availability == InstanceTypeZone.Availability.AVAILABLE
    assert offer("H100-1-80G", "fr-par-2").availability == InstanceTypeZone.Availability.SHORTAGE
    assert offer("L4-1-24G", "pl-waw-2").availability == InstanceTypeZone.Availability.SHORTAGE


def test_it_adds_zone_offers_where_the_provider_starts_selling_a_type(seed, fake_scaleway):
    fake_scaleway.server_types["L4-1-24G"][6] += ("nl-ams-1",)

    result = sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    assert result.zone_offers_created == 1
    assert offer("L4-1-24G", "nl-ams-1").availability == InstanceTypeZone.Availability.AVAILABLE


def test_it_asks_only_about_the_providers_active_zones(seed, fake_scaleway):
    Zone.objects.filter(code="nl-ams-1").update(active=False)

    sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    asked = {r.path.split("/")[4] for r in fake_scaleway.requests_to(r"/products/servers$")}
    assert asked == {"fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-2", "nl-ams-3", "pl-waw-1", "pl-waw-2"}


def test_a_provider_error_propagates_and_changes_nothing(seed, fake_scaleway):
    fake_scaleway.set_price("L40S-1-48G", 9.99)
    fake_scaleway.fail_next(r"/pl-waw-2/products/servers$", status=502, body=HTML_BAD_GATEWAY, content_type="text/html")

    with pytest.raises(ProviderError) as raised:
        sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    assert not raised.value.permanent
    assert InstanceType.objects.get(code="L40S-1-48G").cost_per_hour == Decimal("1.4699")


# --- the management command -----------------------------------------------------------------


@pytest.fixture
def scaleway_env(monkeypatch, fake_scaleway):
    monkeypatch.setenv("SCW_ACCESS_KEY", TEST_ACCESS_KEY)
    monkeypatch.setenv("SCW_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("SCW_DEFAULT_PROJECT_ID", TEST_PROJECT_ID)
    monkeypatch.setenv("SCW_API_URL", fake_scaleway.url)
    return fake_scaleway


def test_the_command_prints_a_summary(seed, scaleway_env, capsys):
    scaleway_env.set_price("L4-1-24G", 0.79)

    call_command("sync_catalog", "scaleway")

    assert capsys.readouterr().out.strip() == (
        f"scaleway: {SCALEWAY_GPU_TYPES} GPU types fetched, 1 updated, 0 created (inactive), 0 skipped; "
        "zone offers: 0 created, 0 changed, 0 withdrawn"
    )


def test_the_command_fails_in_one_line_without_credentials(seed, monkeypatch):
    for name in ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID", "SCW_ACCESS_KEY_FILE",
                 "SCW_SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(CommandError) as raised:
        call_command("sync_catalog", "scaleway")

    message = str(raised.value)
    assert message.startswith("scaleway: Scaleway is not configured: SCW_ACCESS_KEY is not set")
    assert "\n" not in message and raised.value.returncode == 1


def test_the_command_names_an_unknown_provider(seed):
    with pytest.raises(CommandError) as raised:
        call_command("sync_catalog", "ovh")

    assert str(raised.value) == "no provider with code 'ovh' (known: mock, scaleway)"



def test_it_writes_a_catalog_sync_action_for_each_run(seed, fake_scaleway):
    from monitoring.models import ActionLog

    sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())
    fake_scaleway.fail_next(r"/pl-waw-2/products/servers$", status=502, body=HTML_BAD_GATEWAY, content_type="text/html")
    with pytest.raises(ProviderError):
        sync_provider_catalog(scaleway(), adapter=fake_scaleway.provider())

    rows = list(ActionLog.objects.filter(action_type="CATALOG_SYNC").order_by("id"))
    assert [row.status for row in rows] == ["success", "failed"]
    assert "GPU types fetched" in rows[0].metadata["summary"]
