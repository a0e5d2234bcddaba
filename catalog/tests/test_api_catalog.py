"""The catalog REST API: lists, filters, lookups by code, writes, permissions and refused deletes."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from catalog.models import InstanceType, LlmModel, Provider, Region, Zone
from catalog.tests.factories import make_instance_type, make_provider, make_region

pytestmark = pytest.mark.django_db


def codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["code"] for row in response.json()["results"]]


def test_it_lists_the_one_gpu_types_cheapest_first(api, seed):
    response = api.get("/api/instance-types/?gpu_count=1&ordering=cost_per_hour")

    assert codes(response) == ["MOCK-GPU-S", "GPU-3070-S", "L4-1-24G", "RENDER-S", "L40S-1-48G", "H100-1-80G"]
    assert [row["cost_per_hour"] for row in response.json()["results"][:3]] == ["0.2500", "0.7600", "0.7875"]


def test_it_orders_most_expensive_first_when_asked(api, seed):
    assert codes(api.get("/api/instance-types/?ordering=-cost_per_hour"))[:2] == ["B300-SXM-8-288G", "H100-SXM-8-80G"]


def test_it_pages_lists_with_a_total_count(api, seed):
    body = api.get("/api/instance-types/?limit=5").json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 18 and body["previous"] is None
    assert len(body["results"]) == 5
    assert body["next"].endswith("limit=5&offset=5")


def test_a_limit_above_the_maximum_is_clamped_to_it(api, seed):
    body = api.get("/api/instance-types/?limit=100000").json()
    assert body["count"] == 18 and len(body["results"]) == 18 and body["next"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("min_vram_gb=384", ["H100-SXM-8-80G", "L40S-8-48G", "B300-SXM-8-288G"]),
        ("vram_per_gpu_gb=80&min_gpu_count=4", ["H100-SXM-4-80G", "H100-SXM-8-80G"]),
        ("gpu_model=l40s&max_cost_per_hour=3", ["L40S-1-48G", "L40S-2-48G"]),
        ("provider=mock", ["MOCK-GPU-S", "MOCK-4GPU-M"]),
        ("region=pl-waw&gpu_count=8", ["L4-8-24G", "L40S-8-48G"]),
        ("zone=fr-par-1", ["RENDER-S"]),
        ("search=3070", ["GPU-3070-S"]),
    ],
)
def test_it_filters_instance_types(api, seed, query, expected):
    assert sorted(codes(api.get(f"/api/instance-types/?{query}&ordering=cost_per_hour"))) == sorted(expected)


def test_it_filters_zones_by_provider_and_region(api, seed):
    assert codes(api.get("/api/zones/?region=pl-waw")) == ["pl-waw-1", "pl-waw-2"]
    assert codes(api.get("/api/zones/?provider=mock&active=true")) == ["mock-eu-1"]


def test_it_filters_models_by_vram_and_mock_only(api, seed):
    assert codes(api.get("/api/models/?min_vram_gb=100")) == [
        "Qwen/Qwen2.5-72B-Instruct",
        "meta-llama/Llama-3.1-70B-Instruct",
    ]
    assert codes(api.get("/api/models/?mock_only=true")) == ["mock-echo"]
    assert "google/gemma-2-9b-it" in codes(api.get("/api/models/?max_vram_gb=20&min_vram_gb=20"))


def test_it_answers_400_naming_a_filter_it_cannot_read(api, seed):
    response = api.get("/api/instance-types/?gpu_count=many")

    assert response.status_code == 400
    assert "gpu_count" in response.json()["error"]["fields"]


def test_it_shows_total_vram_and_the_zones_a_type_is_offered_in(api, seed):
    body = api.get("/api/instance-types/L40S-4-48G/").json()

    assert body["provider"] == "scaleway"
    assert body["total_vram_gb"] == 192
    assert [(offer["zone"], offer["region"], offer["availability"]) for offer in body["zones"]] == [
        ("fr-par-2", "fr-par", "available"),
        ("pl-waw-2", "pl-waw", "available"),
    ]


def test_it_addresses_models_by_hugging_face_id_and_by_plain_name(api, seed):
    assert api.get("/api/models/Qwen/Qwen2.5-7B-Instruct/").json()["vram_required_gb"] == 16
    assert api.get("/api/models/mock-echo/").json()["mock_only"] is True
    assert api.get("/api/models/Qwen/").status_code == 404


def test_it_updates_and_deletes_a_model_addressed_by_a_slash_id(api, seed):
    response = api.patch("/api/models/google/gemma-2-9b-it/", {"context_length": 4096}, format="json")
    assert response.status_code == 200, response.content
    assert LlmModel.objects.get(code="google/gemma-2-9b-it").context_length == 4096

    assert api.delete("/api/models/google/gemma-2-9b-it/").status_code == 204
    assert not LlmModel.objects.filter(code="google/gemma-2-9b-it").exists()


def test_it_refuses_a_model_code_that_cannot_be_addressed(api, db):
    response = api.post(
        "/api/models/", {"code": "a/b/c", "vram_required_gb": 1, "context_length": 1024}, format="json"
    )

    assert response.status_code == 400
    assert "code" in response.json()["error"]["fields"]


def test_it_asks_for_the_provider_when_a_region_code_is_shared(api, db):
    make_region(provider=make_provider(code="east"), code="central", name="East central")
    make_region(provider=make_provider(code="west"), code="central", name="West central")

    response = api.get("/api/regions/central/")
    assert response.status_code == 400
    assert "?provider=" in response.json()["error"]["message"]

    assert api.get("/api/regions/central/?provider=west").json()["name"] == "West central"


def test_it_creates_a_region_and_a_zone_by_codes(api, seed):
    response = api.post("/api/regions/", {"provider": "scaleway", "code": "it-mil", "name": "Milan"}, format="json")
    assert response.status_code == 201, response.content

    response = api.post("/api/zones/", {"region": "it-mil", "code": "it-mil-1"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["provider"] == "scaleway"
    assert Zone.objects.get(code="it-mil-1").region.provider.code == "scaleway"


def test_it_picks_a_shared_region_code_with_the_provider_given_beside_it(api, db):
    make_region(provider=make_provider(code="east"), code="central")
    west = make_region(provider=make_provider(code="west"), code="central")

    ambiguous = api.post("/api/zones/", {"region": "central", "code": "central-1"}, format="json")
    assert ambiguous.status_code == 400
    assert "provider" in ambiguous.json()["error"]["fields"]["region"]

    response = api.post("/api/zones/", {"region": "central", "provider": "west", "code": "central-1"}, format="json")
    assert response.status_code == 201, response.content
    assert Zone.objects.get(code="central-1").region == west


def test_it_refuses_to_delete_a_provider_that_still_has_regions(api, seed):
    response = api.delete("/api/providers/scaleway/")

    assert response.status_code == 409
    assert "fr-par" in response.json()["error"]["message"]
    assert Provider.objects.filter(code="scaleway").exists()
    assert Region.objects.filter(provider__code="scaleway").count() == 3


def test_it_refuses_to_delete_a_region_that_still_has_zones(api, seed):
    response = api.delete("/api/regions/pl-waw/")

    assert response.status_code == 409
    assert "pl-waw-1" in response.json()["error"]["message"]


def test_it_deletes_a_zone_with_its_offers(api, seed):
    assert api.delete("/api/zones/fr-par-1/").status_code == 204

    assert not Zone.objects.filter(code="fr-par-1").exists()
    assert InstanceType.objects.get(code="RENDER-S").zones.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("cost_per_hour", "-1"), ("gpu_count", 0), ("allocation_params", ["image"]), ("gpu_count", 2**40)],
)
def test_it_refuses_an_instance_type_that_breaks_a_model_rule(api, seed, field, value):
    body = {"provider": "scaleway", "code": "NEW-1", "gpu_count": 1, "vram_per_gpu_gb": 24, "vcpu": 8, "ram_gb": 32,
            "cost_per_hour": "1.5", field: value}

    response = api.post("/api/instance-types/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not InstanceType.objects.filter(code="NEW-1").exists()


def test_it_creates_an_instance_type_with_allocation_params(api, seed):
    body = {"provider": "scaleway", "code": "NEW-1", "gpu_count": 2, "vram_per_gpu_gb": 24, "vcpu": 8, "ram_gb": 32,
            "cost_per_hour": "1.5", "allocation_params": {"boot_type": "local"}}

    response = api.post("/api/instance-types/", body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["total_vram_gb"] == 48
    assert InstanceType.objects.get(code="NEW-1").cost_per_hour == Decimal("1.5")


def test_it_refuses_a_second_type_with_the_same_code_at_one_provider(api, seed):
    body = {"provider": "scaleway", "code": "L4-1-24G", "gpu_count": 1, "vram_per_gpu_gb": 24, "vcpu": 8,
            "ram_gb": 32, "cost_per_hour": "1"}

    assert api.post("/api/instance-types/", body, format="json").status_code == 400


def test_it_refuses_to_move_a_type_to_another_provider_while_offered_in_its_zones(api, seed):
    response = api.patch("/api/instance-types/L4-1-24G/", {"provider": "mock"}, format="json")

    assert response.status_code == 400
    assert "fr-par-2" in response.json()["error"]["fields"]["provider"]
    assert InstanceType.objects.get(code="L4-1-24G").provider.code == "scaleway"


def test_it_moves_a_type_that_is_offered_nowhere(api, db):
    make_provider(code="mock", adapter=Provider.Adapter.MOCK)
    make_instance_type(code="LONELY")

    response = api.patch("/api/instance-types/LONELY/", {"provider": "mock"}, format="json")

    assert response.status_code == 200, response.content
    assert InstanceType.objects.get(code="LONELY").provider.code == "mock"


def test_it_refuses_to_move_a_zone_with_offers_to_another_provider(api, seed):
    response = api.patch("/api/zones/mock-eu-1/", {"region": "fr-par"}, format="json")

    assert response.status_code == 400
    assert "region" in response.json()["error"]["fields"]
    assert Zone.objects.get(code="mock-eu-1").region.code == "mock-eu"


def test_it_refuses_to_move_a_region_whose_zones_have_offers(api, seed):
    response = api.patch("/api/regions/pl-waw/", {"provider": "mock"}, format="json")

    assert response.status_code == 400
    assert "provider" in response.json()["error"]["fields"]


def test_a_viewer_reads_but_cannot_write(viewer_api, seed):
    assert viewer_api.get("/api/providers/").status_code == 200
    assert viewer_api.patch("/api/providers/mock/", {"name": "x"}, format="json").status_code == 403
    assert viewer_api.delete("/api/models/mock-echo/").status_code == 403
    assert viewer_api.put("/api/instance-types/L4-1-24G/zones/", {"zones": []}, format="json").status_code == 403
    assert Provider.objects.get(code="mock").name == "Mock cloud"


def test_an_anonymous_client_gets_nothing(seed):
    assert APIClient().get("/api/instance-types/").status_code in (401, 403)


def test_it_lists_the_action_types_read_only(api, seed):
    body = api.get("/api/action-types/?category=scaling").json()

    assert [row["code"] for row in body["results"]] == ["SCALE_DECISION"]
    assert api.get("/api/action-types/INSTANCE_READY/").json()["color"] == "green"
    assert api.delete("/api/action-types/INSTANCE_READY/").status_code == 405


def test_it_asks_for_the_provider_on_extra_actions_too(api, db):
    for provider in (make_provider(code="east"), make_provider(code="west")):
        make_instance_type(provider=provider, code="SHARED-1")

    assert api.get("/api/instance-types/SHARED-1/zones/").status_code == 400
    assert api.get("/api/instance-types/SHARED-1/zones/?provider=east").json() == {"zones": []}


def test_the_browsable_api_renders_lists_and_slash_ids(api, seed):
    listing = api.get("/api/instance-types/?gpu_count=1", HTTP_ACCEPT="text/html")
    detail = api.get("/api/models/Qwen/Qwen2.5-7B-Instruct/", HTTP_ACCEPT="text/html")

    assert listing.status_code == 200 and "GPU-3070-S" in listing.content.decode()
    assert detail.status_code == 200 and "Qwen/Qwen2.5-7B-Instruct" in detail.content.decode()
