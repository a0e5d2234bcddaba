"""The router's dashboard pages through Django's test client: API keys, request traces, models, playground."""

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import InstanceType
from instances.status import Status
from instances.tests.factories import make_instance
from router.keys import hash_key
from router.models import ApiKey, RequestTrace
from router.services import create_api_key
from router.views import TRACES_PAGE_SIZE

HTMX = {"HTTP_HX_REQUEST": "true"}
Outcome = RequestTrace.Outcome


@pytest.fixture
def staff(client, admin_user, seed):
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer(client, viewer_user, seed):
    client.force_login(viewer_user)
    return client


def make_trace(*, model="mock-echo", key=None, outcome=Outcome.OK, status_code=200, stream=False, ttft_ms=None,
               instance=None, ago=timedelta(minutes=1), **fields) -> RequestTrace:
    return RequestTrace.objects.create(
        api_key=key, endpoint="chat.completions", model=model, instance_id=instance.pk if instance else None,
        status_code=status_code, outcome=outcome, stream=stream, ttft_ms=ttft_ms, latency_ms=50.0,
        prompt_tokens=3, completion_tokens=5, created_at=timezone.now() - ago, **fields,
    )


def test_every_page_renders_for_a_signed_in_user(viewer):
    for url in ("/api-keys/", "/traces/", "/models/", "/playground/"):
        response = viewer.get(url)
        assert response.status_code == 200, url
    html = viewer.get("/traces/").content.decode()
    assert 'href="/api-keys/"' in html and 'href="/playground/"' in html and ">Request traces<" in html


def test_the_pages_need_a_signed_in_user(client, db):
    for url in ("/api-keys/", "/traces/", "/models/", "/playground/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_creating_a_key_shows_the_clear_key_once_and_stores_only_its_hash(staff):
    response = staff.post("/api-keys/new/", {"name": "ci", "requests_per_minute": "60",
                                            "allowed_models": ["mock-echo"]}, **HTMX)

    key = ApiKey.objects.get()
    html = response.content.decode()
    clear = html.split('id="new-key-value">')[1].split("<")[0]
    assert clear.startswith(key.prefix) and key.key_hash == hash_key(clear)
    assert "shown this once" in html and "Copy" in html
    assert key.requests_per_minute == 60 and key.allowed_models == ["mock-echo"]
    assert key.created_by.username == "admin"
    # The row is swapped into the table out of band; the list never shows the clear key again.
    assert 'hx-swap-oob="afterbegin:#api-key-rows"' in html
    assert clear not in staff.get("/api-keys/").content.decode()
    assert not ApiKey.objects.filter(key_hash=clear).exists()


def test_creating_a_key_without_javascript_renders_the_whole_page_with_the_key(staff):
    html = staff.post("/api-keys/new/", {"name": "plain"}).content.decode()
    assert "<h1>API keys</h1>" in html and 'id="new-key-value"' in html


def test_bad_input_shows_errors_next_to_the_fields_and_creates_nothing(staff):
    html = staff.post("/api-keys/new/", {"name": "", "tokens_per_minute": "0",
                                         "allowed_models": ["no-such-model"]}, **HTMX).content.decode()
    assert 'data-error-for="name"' in html
    assert 'data-error-for="tokens_per_minute"' in html
    assert 'data-error-for="allowed_models"' in html
    assert not ApiKey.objects.exists()


def test_revoking_a_key_from_the_list_marks_its_row_revoked(staff):
    key, _ = create_api_key(name="old")
    html = staff.get("/api-keys/").content.decode()
    assert "hx-confirm=" in html and f"/api-keys/{key.pk}/revoke/" in html

    response = staff.post(f"/api-keys/{key.pk}/revoke/", **HTMX)

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert f'id="api-key-{key.pk}"' in response.content.decode() and "revoked" in response.content.decode()
    assert staff.post(f"/api-keys/{key.pk}/revoke/").status_code == 302


def test_a_non_staff_user_sees_keys_but_cannot_create_or_revoke(viewer):
    key, _ = create_api_key(name="theirs")
    html = viewer.get("/api-keys/").content.decode()
    assert "theirs" in html and "Create key" not in html and "Revoke" not in html

    assert viewer.post("/api-keys/new/", {"name": "mine"}).status_code == 403
    assert viewer.post(f"/api-keys/{key.pk}/revoke/").status_code == 403
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None


def test_traces_are_listed_newest_first_and_link_their_instance(viewer):
    instance = make_instance(status=Status.READY, with_server=False)
    older = make_trace(ago=timedelta(minutes=5))
    newer = make_trace(instance=instance, ttft_ms=12.0, stream=True, retries=1, ago=timedelta(minutes=1))

    html = viewer.get("/traces/").content.decode()

    assert html.index(f'data-trace="{newer.pk}"') < html.index(f'data-trace="{older.pk}"')
    assert f'href="/instances/{instance.pk}/"' in html


def test_trace_filters_narrow_the_rows(viewer):
    key, _ = create_api_key(name="filtered")
    by_key = make_trace(key=key)
    other_model = make_trace(model="Qwen/Qwen2.5-7B-Instruct")
    failed = make_trace(outcome=Outcome.UPSTREAM_ERROR, status_code=502)
    streamed = make_trace(stream=True, ttft_ms=20.0)

    def shown(**query):
        html = viewer.get("/traces/", query, **HTMX).content.decode()
        return {trace.pk for trace in (by_key, other_model, failed, streamed) if f'data-trace="{trace.pk}"' in html}

    assert shown(key=key.pk) == {by_key.pk}
    assert shown(model="Qwen/Qwen2.5-7B-Instruct") == {other_model.pk}
    assert shown(outcome="upstream_error") == {failed.pk}
    assert shown(status="502") == {failed.pk}
    assert shown(stream="yes") == {streamed.pk}
    assert shown(stream="no", model="mock-echo") == {by_key.pk, failed.pk}
    assert shown(status="not-a-number") == {by_key.pk, other_model.pk, failed.pk, streamed.pk}


def test_traces_load_a_page_at_a_time(viewer):
    for minute in range(TRACES_PAGE_SIZE + 2):
        make_trace(ago=timedelta(minutes=minute + 1))

    first = viewer.get("/traces/", {"model": "mock-echo"}).content.decode()
    second = viewer.get("/traces/", {"model": "mock-echo", "page": "2"}, **HTMX).content.decode()

    assert first.count('class="trace"') == TRACES_PAGE_SIZE and "page=2" in first and "model=mock-echo" in first
    assert second.count('class="trace"') == 2 and "page=3" not in second and "<h1>" not in second


def test_the_models_page_counts_ready_instances_gpus_requests_errors_and_ttft_p95(viewer):
    make_instance(status=Status.READY, with_server=False)
    four_gpus = make_instance(status=Status.READY, with_server=False)
    four_gpus.instance_type = InstanceType.objects.get(code="MOCK-4GPU-M")
    four_gpus.save(update_fields=["instance_type"])
    make_instance(status=Status.BOOTING, with_server=False)
    for ttft in range(10, 210, 10):  # 20 streams: the p95 (nearest rank) is the 19th value, 190 ms
        make_trace(stream=True, ttft_ms=float(ttft))
    make_trace(outcome=Outcome.UPSTREAM_ERROR, status_code=502)
    make_trace(ago=timedelta(hours=2), outcome=Outcome.UPSTREAM_ERROR, status_code=502)  # outside the hour
    make_trace(model="Qwen/Qwen2.5-7B-Instruct")

    html = viewer.get("/models/").content.decode()

    echo = html.split('data-model="mock-echo"')[1].split("</tr>")[0]
    assert 'data-stat="ready_instances">2<' in echo
    assert 'data-stat="gpus">5<' in echo
    assert 'data-stat="requests">21<' in echo
    assert 'data-stat="errors">1<' in echo
    assert 'data-stat="ttft_p95_ms">190<' in echo
    qwen = html.split('data-model="Qwen/Qwen2.5-7B-Instruct"')[1].split("</tr>")[0]
    assert 'data-stat="ready_instances">0<' in qwen and 'data-stat="requests">1<' in qwen


def test_the_playground_offers_models_with_ready_instances_and_snippets(viewer):
    make_instance(status=Status.READY, with_server=False)
    html = viewer.get("/playground/").content.decode()
    assert '<option value="mock-echo" selected>' in html
    assert "Qwen/Qwen2.5-7B-Instruct" not in html
    assert "$INVENTIV_API_KEY" in html and 'os.environ["INVENTIV_API_KEY"]' in html
    assert "http://testserver/v1" in html and "/static/js/playground.js" in html
    assert 'name="' not in html.split('id="playground-form"')[1].split("</form>")[0]
