"""The data plane end to end: the official `openai` client -> the router under uvicorn -> simulators,
all real loopback servers."""


import openai
import pytest
import requests

from instances.lifecycle import status_changed
from instances.models import Instance
from instances.status import Status
from router.models import ApiKey, RequestTrace
from router.services import revoke_api_key
from router.tests.factories import MODEL, client_key, openai_client, router_config, wait_for
from router.tests.servers import runtime_of

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello router"}]
EMBEDDER = "Qwen/Qwen3-Embedding-0.6B"  # the seed's embedding model (its simulator embeds like any)


def chat(router, key, **body):
    """A raw POST to the router's chat route, for what the openai client would hide."""
    payload = {"model": MODEL, "messages": HELLO, "max_tokens": 4, **body}
    return requests.post(f"{router.url}/v1/chat/completions", json=payload,
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_the_openai_client_gets_answers_from_both_instances(engines, start_router):
    first, second = engines(), engines()
    key = client_key()
    client = openai_client(start_router().url, key)

    served_by = set()
    for _ in range(6):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, max_tokens=4)
        assert raw.parse().choices[0].message.content == "hello router hello router"
        assert raw.parse().usage.completion_tokens == 4
        assert raw.headers["x-inventiv-route-reason"] == "least-loaded"
        served_by.add(raw.headers["x-inventiv-instance"])

    assert served_by == {first.id, second.id}


def test_streams_pass_through_with_usage_only_when_asked(engines, start_router):
    engines()
    key = client_key()
    client = openai_client(start_router().url, key)

    plain = list(client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3, stream=True))
    with_usage = list(client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=3, stream=True, stream_options={"include_usage": True}
    ))

    assert "".join(chunk.choices[0].delta.content or "" for chunk in plain) == "hello router hello"
    assert all(chunk.usage is None for chunk in plain)
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens == 3
    text = client.completions.create(model=MODEL, prompt="one two", max_tokens=3, stream=True)
    assert "".join(chunk.choices[0].text for chunk in text) == "one two one"


def test_completions_embeddings_and_models_are_served(engines, start_router):
    engines()
    engines(model=EMBEDDER)
    key = client_key()
    client = openai_client(start_router().url, key)

    assert client.completions.create(model=MODEL, prompt="a b c", max_tokens=2).choices[0].text == "a b"
    embedding = client.embeddings.create(model=EMBEDDER, input=["x", "y"])
    assert len(embedding.data) == 2 and embedding.usage.prompt_tokens == 2
    assert sorted(model.id for model in client.models.list()) == sorted([MODEL, EMBEDDER])
    assert client.models.retrieve(MODEL).owned_by == "inventiv"


def test_embeddings_go_to_embedding_models_only_and_they_answer_nothing_else(engines, start_router):
    engines()
    engines(model=EMBEDDER)
    client = openai_client(start_router().url, client_key())

    with pytest.raises(openai.BadRequestError) as generator:
        client.embeddings.create(model=MODEL, input=["x"])
    assert generator.value.body["code"] == "model_not_embedding" and generator.value.body["param"] == "model"
    assert "embedding models only" in generator.value.body["message"]
    with pytest.raises(openai.BadRequestError) as embedder:
        client.chat.completions.create(model=EMBEDDER, messages=HELLO, max_tokens=2)
    assert embedder.value.body["code"] == "model_is_embedding"


def test_errors_are_openai_shaped(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    client = openai_client(router.url, key)

    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert unknown.value.body["code"] == "model_not_found"

    no_instance = chat(router, key, model="Qwen/Qwen2.5-7B-Instruct")  # in the catalog, nothing serves it
    assert no_instance.status_code == 503
    assert int(no_instance.headers["Retry-After"]) >= 1
    assert set(no_instance.json()["error"]) == {"message", "type", "param", "code"}
    assert no_instance.json()["error"]["code"] == "no_instance"

    not_json = requests.post(f"{router.url}/v1/chat/completions", data=b"{not json",
                             headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == "invalid_request_error"
    assert chat(router, key, model=None).json()["error"]["param"] == "model"
    assert chat(router, key, messages="hello").json()["error"]["param"] == "messages"
    assert requests.get(f"{router.url}/v1/models", timeout=10).status_code == 401
    assert chat(router, "sk-inv-wrong").json()["error"]["code"] == "invalid_api_key"
    assert requests.get(f"{router.url}/v1/nothing", headers={"Authorization": f"Bearer {key}"},
                        timeout=10).status_code == 404


def test_an_upstream_client_error_is_relayed_as_it_is(engines, start_router):
    engines()
    key = client_key()
    answer = chat(start_router(), key, max_tokens=-1)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "max_tokens"  # the engine's own message


def test_a_revoked_key_is_refused_as_soon_as_the_revoke_returns(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    assert chat(router, key).status_code == 200
    wait_for(lambda: runtime_of(router).usage.written == 1, what="the trace")  # no write of ours meets it

    revoke_api_key(ApiKey.objects.get())

    assert chat(router, key).status_code == 401


def test_a_new_ready_instance_gets_traffic_once_its_transition_is_pushed(engines, start_router):
    engines()
    key = client_key()
    router = start_router(config=router_config(refresh_interval_s=600))  # no poll: only the push can tell it
    newcomer = engines()  # written as ready; its transition's signal follows, as after the commit
    status_changed.send(sender=Instance, instance=newcomer.instance, before=Status.STARTING, after=Status.READY)

    # Announced without waiting for the routers (router/signals.py): the next reload brings it.
    wait_for(lambda: newcomer.id in {chat(router, key).headers["x-inventiv-instance"] for _ in range(2)},
             what="the new instance to get traffic")


def test_a_new_ready_instance_no_push_announced_is_found_by_polling(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    newcomer = engines()  # no transition, no signal: only the router's poll can find it

    wait_for(lambda: chat(router, key).headers["x-inventiv-instance"] == newcomer.id, what="the new instance")


def test_a_known_model_without_instance_is_not_listed(engines, start_router):
    engines()
    key = client_key()
    listed = requests.get(f"{start_router().url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                          timeout=10).json()
    assert listed["object"] == "list"
    assert [card["id"] for card in listed["data"]] == [MODEL]


def test_a_key_is_limited_to_its_models_and_requests_per_minute(engines, start_router):
    engines()
    limited = client_key(requests_per_minute=2, allowed_models=[MODEL])
    other_model_only = client_key(allowed_models=["Qwen/Qwen2.5-7B-Instruct"])
    router = start_router()

    assert [chat(router, limited).status_code for _ in range(2)] == [200, 200]
    refused = chat(router, limited)
    forbidden = chat(router, other_model_only)

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "model_not_allowed"


def test_a_key_over_its_tokens_per_minute_waits(engines, start_router):
    engines()
    key = client_key(tokens_per_minute=10)
    router = start_router()

    assert chat(router, key, max_tokens=12).status_code == 200  # 2 prompt + 12 completion tokens
    refused = chat(router, key)

    assert refused.status_code == 429 and "tokens per minute" in refused.json()["error"]["message"]


def test_session_affinity_sticks_to_one_instance(engines, start_router):
    all_ids = {engines().id for _ in range(3)}
    key = client_key()
    router = start_router()

    def instance_for(session: str) -> set[str]:
        answers = [requests.post(f"{router.url}/v1/chat/completions", json={"model": MODEL, "messages": HELLO},
                                 headers={"Authorization": f"Bearer {key}", "X-Session-Id": session}, timeout=10)
                   for _ in range(5)]
        assert {answer.headers["x-inventiv-route-reason"] for answer in answers} == {"affinity"}
        return {answer.headers["x-inventiv-instance"] for answer in answers}

    chosen = [instance_for(f"session-{n}") for n in range(16)]

    assert all(len(ids) == 1 for ids in chosen)
    assert len(set().union(*chosen)) > 1 and set().union(*chosen) <= all_ids


def test_traces_are_written_in_batches_with_tokens_and_timings(engines, start_router):
    engines()
    key = client_key()
    router = start_router(config=router_config(flush_batch=4, flush_interval_s=60))
    for _ in range(5):
        chat(router, key, max_tokens=3)
    raw_stream = chat(router, key, max_tokens=2, stream=True)
    assert raw_stream.text.endswith("data: [DONE]\n\n")

    # Four records make a batch: written at once; the other two wait for the interval (or shutdown).
    usage = runtime_of(router).usage
    wait_for(lambda: usage.written == 4, what="the first batch")
    assert usage.pending == 2
    router.stop()

    traces = list(RequestTrace.objects.order_by("created_at", "id"))
    assert len(traces) == 6
    assert {(t.prompt_tokens, t.completion_tokens) for t in traces[:5]} == {(2, 3)}
    assert (traces[5].stream, traces[5].prompt_tokens, traces[5].completion_tokens) == (True, 2, 2)
    assert traces[5].ttft_ms is not None and traces[5].ttft_ms <= traces[5].latency_ms
    assert all(t.outcome == "ok" and t.status_code == 200 and t.latency_ms > 0 and t.retries == 0 for t in traces)
    assert all(t.endpoint == "chat/completions" and t.route_reason == "least-loaded" for t in traces)
    assert ApiKey.objects.get().last_used_at == traces[-1].created_at


def test_a_refused_request_is_traced_with_its_outcome(engines, start_router):
    engines()
    key = client_key()
    router = start_router()
    chat(router, key, model="Qwen/Qwen2.5-7B-Instruct")
    chat(router, key, messages=[])
    router.stop()

    outcomes = set(RequestTrace.objects.values_list("status_code", "outcome"))
    assert outcomes == {(503, "no_instance"), (400, "client_error")}


def test_a_key_sees_only_the_models_it_may_use(engines, start_router):
    engines()
    key = client_key(allowed_models=["Qwen/Qwen2.5-7B-Instruct"])
    listed = requests.get(f"{start_router().url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert listed.json() == {"object": "list", "data": []}


def test_wrong_methods_and_oversized_bodies_are_refused(engines, start_router):
    engines()
    key = client_key()
    router = start_router(config=router_config(max_body_bytes=1024))
    headers = {"Authorization": f"Bearer {key}"}

    assert requests.get(f"{router.url}/v1/chat/completions", headers=headers, timeout=10).status_code == 405
    assert requests.post(f"{router.url}/v1/models", headers=headers, timeout=10).status_code == 405
    too_big = chat(router, key, messages=[{"role": "user", "content": "x" * 2048}])
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"


def test_a_key_over_its_monthly_budget_gets_an_explanatory_429(engines, start_router):
    from decimal import Decimal

    from django.utils import timezone

    from finops.models import Budget

    engines()
    key = client_key()
    router = start_router()
    assert chat(router, key).status_code == 200

    today = timezone.now().date()
    Budget.objects.create(api_key=ApiKey.objects.get(), amount=Decimal("10"), spent=Decimal("10.5"),
                          spent_month=today.replace(day=1), spent_at=timezone.now())
    wait_for(lambda: chat(router, key).status_code == 429, what="the over-budget key to be refused")

    refused = chat(router, key).json()["error"]
    assert refused["code"] == "budget_exceeded" and refused["type"] == "insufficient_quota"
    assert "monthly budget" in refused["message"]
