"""GET /api/launch-plan/: the plan of a model on an instance type, for any signed-in user."""

import pytest

from catalog.tests.factories import make_instance_type, make_provider

pytestmark = pytest.mark.django_db

URL = "/api/launch-plan/"
PLAN_KEYS = {"fits", "reason", "image", "tensor_parallel_size", "max_model_len", "gpu_memory_utilization",
             "root_volume", "secret_env", "args"}


def test_it_answers_a_plan_in_the_documented_shape(viewer_api, seed):
    response = viewer_api.get(URL, {"instance_type": "L4-1-24G", "model": "meta-llama/Llama-3.1-8B-Instruct"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PLAN_KEYS
    assert body["fits"] is True and body["reason"] == ""
    assert body["image"].startswith("vllm/vllm-openai:v") and body["tensor_parallel_size"] == 1
    assert 4096 <= body["max_model_len"] <= 65536 and body["gpu_memory_utilization"] == 0.9
    assert body["root_volume"] == {"type": "sbs_volume", "size_gb": 80}
    assert body["secret_env"] == ["HF_TOKEN"]
    assert body["args"][:3] == ["meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "1"]
    assert str(body["max_model_len"]) in body["args"]


def test_it_answers_a_refusal_in_the_same_shape_with_the_reason(api, seed):
    body = api.get(URL, {"instance_type": "L40S-1-48G", "model": "meta-llama/Llama-3.1-70B-Instruct"}).json()

    assert set(body) == PLAN_KEYS and body["fits"] is False
    assert "needs 160 GB of VRAM" in body["reason"]
    assert (body["image"], body["root_volume"], body["args"]) == ("", None, [])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"model": "mock-echo"}, "instance_type"),
        ({"instance_type": "MOCK-GPU-S"}, "model"),
        ({"instance_type": "NO-SUCH-TYPE", "model": "mock-echo"}, "instance_type"),
        ({"instance_type": "MOCK-GPU-S", "model": "org/no-such-model"}, "model"),
    ],
)
def test_a_missing_or_unknown_code_is_a_400_naming_the_field(api, seed, query, field):
    response = api.get(URL, query)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_a_type_code_shared_by_two_providers_needs_the_provider(api, seed):
    make_instance_type(provider=make_provider(code="other"), code="L4-1-24G")
    query = {"instance_type": "L4-1-24G", "model": "Qwen/Qwen2.5-7B-Instruct"}

    assert "provider" in api.get(URL, query).json()["error"]["fields"]
    assert api.get(URL, {**query, "provider": "scaleway"}).json()["fits"] is True


def test_it_needs_a_signed_in_user(client, seed):
    assert client.get(URL, {"instance_type": "MOCK-GPU-S", "model": "mock-echo"}).status_code in (401, 403)
