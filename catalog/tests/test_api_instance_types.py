"""Zone offers of an instance type and the compatibility endpoints."""

import pytest

from catalog.models import InstanceType, InstanceTypeZone
from catalog.tests.factories import make_instance_type, make_model, make_provider, make_region, make_zone

pytestmark = pytest.mark.django_db


def offered_in(code: str) -> list[str]:
    return sorted(InstanceType.objects.get(code=code).zones.values_list("code", flat=True))


def test_it_lists_the_zones_a_type_is_offered_in(api, seed):
    body = api.get("/api/instance-types/H100-1-80G/zones/").json()

    assert [offer["zone"] for offer in body["zones"]] == ["fr-par-2", "pl-waw-2"]


def test_it_replaces_the_zones_of_a_type_as_a_whole(api, seed):
    InstanceTypeZone.objects.filter(instance_type__code="L4-1-24G", zone__code="fr-par-2").update(availability="scarce")

    response = api.put("/api/instance-types/L4-1-24G/zones/", {"zones": ["fr-par-2", "nl-ams-1"]}, format="json")

    assert response.status_code == 200, response.content
    assert [(o["zone"], o["availability"]) for o in response.json()["zones"]] == [
        ("fr-par-2", "scarce"),
        ("nl-ams-1", "available"),
    ]
    assert offered_in("L4-1-24G") == ["fr-par-2", "nl-ams-1"]


def test_it_empties_the_zones_of_a_type(api, seed):
    assert api.put("/api/instance-types/RENDER-S/zones/", {"zones": []}, format="json").status_code == 200
    assert offered_in("RENDER-S") == []


def test_it_refuses_a_zone_of_another_provider_and_changes_nothing(api, seed):
    response = api.put("/api/instance-types/L4-1-24G/zones/", {"zones": ["fr-par-3", "mock-eu-1"]}, format="json")

    assert response.status_code == 400
    reason = response.json()["error"]["fields"]["zones"]
    assert "mock-eu-1" in reason and "scaleway" in reason
    assert offered_in("L4-1-24G") == ["fr-par-2", "pl-waw-2"]


def test_it_refuses_an_unknown_zone_and_changes_nothing(api, seed):
    response = api.put("/api/instance-types/L4-1-24G/zones/", {"zones": ["fr-par-2", "mars-1"]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"zones": "Unknown zone: mars-1."}
    assert offered_in("L4-1-24G") == ["fr-par-2", "pl-waw-2"]


def test_it_refuses_a_zones_body_that_is_not_a_list(api, seed):
    response = api.put("/api/instance-types/L4-1-24G/zones/", {"zones": "fr-par-2"}, format="json")

    assert response.status_code == 400
    assert "zones" in response.json()["error"]["fields"]


def test_it_picks_the_zone_of_the_types_own_provider_when_codes_are_shared(api, db):
    ours, theirs = make_provider(code="ours"), make_provider(code="theirs")
    own_zone = make_zone(region=make_region(provider=ours), code="z-1")
    make_zone(region=make_region(provider=theirs), code="z-1")
    make_instance_type(provider=ours, code="T-1")

    assert api.put("/api/instance-types/T-1/zones/", {"zones": ["z-1"]}, format="json").status_code == 200
    assert list(InstanceType.objects.get(code="T-1").zones.all()) == [own_zone]


def test_it_lists_the_types_offered_in_a_zone(api, seed):
    response = api.get("/api/zones/fr-par-1/instance-types/")

    assert response.status_code == 200
    assert [row["code"] for row in response.json()["results"]] == ["RENDER-S"]


def test_qwen_72b_fits_the_types_with_enough_vram_and_not_a_single_l4(api, seed):
    response = api.get("/api/models/Qwen/Qwen2.5-72B-Instruct/compatible-instance-types/")

    assert response.status_code == 200
    compatible = {row["code"] for row in response.json()["results"]}
    assert {"H100-2-80G", "L40S-4-48G", "B300-SXM-8-288G"} <= compatible
    assert not {"L4-1-24G", "H100-1-80G", "MOCK-4GPU-M"} & compatible


def test_mock_echo_runs_only_on_mock_types(api, seed):
    response = api.get("/api/models/mock-echo/compatible-instance-types/")

    assert sorted(row["code"] for row in response.json()["results"]) == ["MOCK-4GPU-M", "MOCK-GPU-S"]


def test_it_lists_the_models_a_type_can_serve(api, seed):
    l4 = {row["code"] for row in api.get("/api/instance-types/L4-1-24G/compatible-models/").json()["results"]}
    mock = [row["code"] for row in api.get("/api/instance-types/MOCK-GPU-S/compatible-models/").json()["results"]]

    assert "Qwen/Qwen2.5-7B-Instruct" in l4
    assert not {"Qwen/Qwen2.5-72B-Instruct", "google/gemma-2-27b-it", "mock-echo"} & l4
    assert mock == ["mock-echo"]


def test_a_real_model_allowed_on_the_simulator_fits_mock_types(api, seed):
    make_model(code="org/small", vram_required_gb=8, allow_simulator=True)

    codes = {row["code"] for row in api.get("/api/models/org/small/compatible-instance-types/").json()["results"]}

    assert {"MOCK-GPU-S", "L4-1-24G"} <= codes


def test_it_answers_404_for_an_unknown_instance_type(api, seed):
    assert api.get("/api/instance-types/NOPE/zones/").status_code == 404
