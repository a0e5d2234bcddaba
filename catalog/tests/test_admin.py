"""Django admin of the catalog and action types: every list opens, searches, filters; offers stay per provider."""

import pytest
from django.urls import reverse

from catalog.models import InstanceType, InstanceTypeZone, RuntimeSetting, Zone

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    ("catalog", "provider", "q=scale&active__exact=1", "Scaleway"),
    ("catalog", "region", "q=par", "fr-par"),
    ("catalog", "zone", "q=fr-par&active__exact=1", "fr-par-3"),
    ("catalog", "instancetype", "q=H100&gpu_count__exact=2", "H100-SXM-2-80G"),
    ("catalog", "instancetypezone", "availability__exact=available&q=RENDER", "fr-par-1"),
    ("catalog", "llmmodel", "q=qwen&mock_only__exact=0", "Qwen/Qwen2.5-72B-Instruct"),
    ("catalog", "runtimesetting", "q=heartbeat", "heartbeat_lost_grace_s"),
    ("monitoring", "actiontype", "category__exact=provider", "PROVIDER_GET_IP"),
]


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(("app", "model", "query", "expected"), CHANGELISTS)
def test_every_changelist_opens_searches_and_filters(admin_client, seed, app, model, query, expected):
    response = admin_client.get(f"{reverse(f'admin:{app}_{model}_changelist')}?{query}")

    # An unknown filter would redirect to ?e=1 instead of answering 200.
    assert response.status_code == 200
    assert expected in response.content.decode()


def test_the_instance_type_page_shows_its_zone_offers(admin_client, seed):
    l4 = InstanceType.objects.get(code="L4-1-24G")

    response = admin_client.get(reverse("admin:catalog_instancetype_change", args=[l4.pk]))

    assert response.status_code == 200
    assert "fr-par-2" in response.content.decode()


def test_the_zone_autocomplete_answers(admin_client, seed):
    url = reverse("admin:autocomplete")
    query = "app_label=catalog&model_name=instancetypezone&field_name=zone&term=waw"

    results = admin_client.get(f"{url}?{query}").json()["results"]

    assert sorted(row["text"] for row in results) == ["pl-waw-1", "pl-waw-2"]


def offer_post_data(instance_type: InstanceType, zone: Zone) -> dict:
    fields = ["code", "name", "gpu_model", "gpu_count", "vram_per_gpu_gb", "vcpu", "ram_gb", "bandwidth_mbps"]
    data = {field: getattr(instance_type, field) for field in [*fields, "cost_per_hour"]}
    data.update(provider=instance_type.provider_id, allocation_params="{}", active="on")
    data.update({"zone_offers-TOTAL_FORMS": 1, "zone_offers-INITIAL_FORMS": 0, "zone_offers-0-zone": zone.pk,
                 "zone_offers-0-availability": "available"})
    return data


def test_the_inline_refuses_a_zone_of_another_provider(admin_client, seed):
    render = InstanceType.objects.get(code="RENDER-S")
    mock_zone = Zone.objects.get(code="mock-eu-1")

    response = admin_client.post(
        reverse("admin:catalog_instancetype_change", args=[render.pk]), offer_post_data(render, mock_zone)
    )

    assert response.status_code == 200  # the form again, with the error
    assert "belongs to mock, not scaleway" in response.content.decode()
    assert list(render.zones.values_list("code", flat=True)) == ["fr-par-1"]


def test_the_inline_adds_a_zone_of_the_types_provider(admin_client, seed):
    render = InstanceType.objects.get(code="RENDER-S")

    response = admin_client.post(
        reverse("admin:catalog_instancetype_change", args=[render.pk]),
        offer_post_data(render, Zone.objects.get(code="fr-par-3")),
    )

    assert response.status_code == 302
    assert sorted(render.zones.values_list("code", flat=True)) == ["fr-par-1", "fr-par-3"]


def test_the_offer_form_refuses_a_zone_of_another_provider(admin_client, seed):
    data = {
        "instance_type": InstanceType.objects.get(code="MOCK-GPU-S").pk,
        "zone": Zone.objects.get(code="fr-par-2").pk,
        "availability": "available",
    }

    response = admin_client.post(reverse("admin:catalog_instancetypezone_add"), data)

    assert response.status_code == 200
    assert "belongs to scaleway, not mock" in response.content.decode()
    assert not InstanceTypeZone.objects.filter(instance_type__code="MOCK-GPU-S", zone__code="fr-par-2").exists()


def test_a_settings_type_and_bounds_are_read_only_in_the_admin(admin_client, seed):
    row = RuntimeSetting.objects.get(key="sweep_interval_s")

    admin_client.post(
        reverse("admin:catalog_runtimesetting_change", args=[row.pk]),
        {"value": "30", "description": "x", "value_type": "str", "min_value": "-1"},
    )

    row.refresh_from_db()
    assert (row.value, row.value_type, row.min_value) == ("30", "int", 1)


def test_the_admin_refuses_a_setting_value_out_of_bounds(admin_client, seed):
    row = RuntimeSetting.objects.get(key="sweep_interval_s")

    response = admin_client.post(reverse("admin:catalog_runtimesetting_change", args=[row.pk]), {"value": "0"})

    assert "0 is below the minimum 1" in response.content.decode()
    row.refresh_from_db()
    assert row.value == "10"


def test_adding_a_type_without_provider_shows_the_form_again(admin_client, seed):
    data = offer_post_data(InstanceType.objects.get(code="RENDER-S"), Zone.objects.get(code="fr-par-3"))
    data.update(code="NEW-1", provider="")

    response = admin_client.post(reverse("admin:catalog_instancetype_add"), data)

    assert response.status_code == 200
    assert not InstanceType.objects.filter(code="NEW-1").exists()
