import pytest

from catalog.models import InstanceType, LlmModel, Zone
from instances.models import Instance
from instances.status import ErrorCode, Status
from instances.tests.factories import make_instance, mock_cloud  # noqa: F401 (fixture)
from monitoring.services import record_action

HTMX = {"HTTP_HX_REQUEST": "true"}
LIVE_PART = '<section id="instances-live" data-live>'


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer(client, viewer_user):
    client.force_login(viewer_user)
    return client


def pk_of(model, code):
    return model.objects.get(code=code).pk


def mock_form() -> dict:
    return {
        "zone": pk_of(Zone, "mock-eu-1"),
        "instance_type": pk_of(InstanceType, "MOCK-GPU-S"),
        "model": pk_of(LlmModel, "mock-echo"),
    }


def test_the_instances_page_lists_unarchived_instances_in_a_live_part(viewer, mock_cloud):
    ready = make_instance(status=Status.READY, with_server=False)
    booting = make_instance(status=Status.BOOTING, with_server=False)
    archived = make_instance(status=Status.ARCHIVED, with_server=False)

    html = viewer.get("/instances/").content.decode()

    assert f'id="instance-{ready.pk}"' in html and f'id="instance-{booting.pk}"' in html
    assert str(archived.pk) not in html
    assert html.count(LIVE_PART) == 1 and "data-live-bar" in html and "/static/js/live.js" in html
    assert "hx-trigger" not in html[html.index(f'id="instance-{booting.pk}"'):]  # the part refreshes, not each row
    assert 'href="/instances/"' in html and 'href="/monitoring/"' in html  # the nav


def test_a_viewer_sees_no_create_form_and_cannot_post_one(viewer, mock_cloud):
    assert 'id="create-form"' not in viewer.get("/instances/").content.decode()
    assert viewer.post("/instances/new/", mock_form()).status_code == 403
    assert not Instance.objects.exists()


def test_choosing_a_zone_offers_only_the_types_sold_there_with_their_prices(staff, mock_cloud):
    html = staff.get("/instances/options/instance-types/", {"zone": pk_of(Zone, "fr-par-1")}, **HTMX).content.decode()
    assert "RENDER-S" in html and "€1.2210/h" in html
    assert "L4-1-24G" not in html and "MOCK-GPU-S" not in html
    assert 'id="model-field" hx-swap-oob="true"' in html  # the model select is emptied too


def test_choosing_a_type_offers_only_the_models_it_can_serve(staff, mock_cloud):
    mock = staff.get("/instances/options/models/", {"instance_type": pk_of(InstanceType, "MOCK-GPU-S")}, **HTMX)
    assert "mock-echo" in mock.content.decode() and "Qwen" not in mock.content.decode()
    small = staff.get("/instances/options/models/", {"instance_type": pk_of(InstanceType, "GPU-3070-S")}, **HTMX)
    # An 8 GB RTX 3070 holds Qwen2.5-0.5B and its cache, not Phi-3-mini's 7.6 GB of weights beside vLLM's own memory.
    assert "Qwen2.5-0.5B" in small.content.decode() and "Phi-3-mini" not in small.content.decode()


def test_creating_from_the_page_shows_the_new_row(staff, mock_cloud, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post("/instances/new/", mock_form(), **HTMX)

    instance = Instance.objects.get()
    html = response.content.decode()
    assert f'id="instance-{instance.pk}"' in html and "requested" in html
    assert Instance.objects.get(pk=instance.pk).status == Status.READY


def test_a_rejected_create_shows_the_error_code_and_message(staff, mock_cloud):
    response = staff.post("/instances/new/", {**mock_form(), "model": ""}, **HTMX)

    instance = Instance.objects.get()
    assert instance.error_code == ErrorCode.MISSING_MODEL
    html = response.content.decode()
    assert "MISSING_MODEL" in html and instance.error_message in html


def test_without_javascript_creating_redirects_back_to_the_list(staff, mock_cloud):
    response = staff.post("/instances/new/", {**mock_form(), "zone": "x"})
    assert response.status_code == 302 and response["Location"] == "/instances/"
    assert Instance.objects.get().error_code == ErrorCode.MISSING_PARAMS


def test_a_row_renders_alone_and_goes_once_archived(staff, mock_cloud):
    instance = make_instance(status=Status.READY, with_server=False)
    row = staff.get(f"/instances/{instance.pk}/row/", HTTP_HX_TARGET=f"instance-{instance.pk}", **HTMX)
    assert row.content.decode().lstrip().startswith(f'<tr id="instance-{instance.pk}"')

    Instance.objects.filter(pk=instance.pk).update(status=Status.ARCHIVED)
    gone = staff.get(f"/instances/{instance.pk}/row/", **HTMX)
    assert gone.status_code == 200 and gone.content == b""


def test_the_detail_page_shows_the_timeline_and_the_error(viewer, mock_cloud):
    instance = make_instance(status=Status.FAILED, with_server=False, error_code="HEARTBEAT_LOST",
                             error_message="No heartbeat for 180 s")
    record_action("REQUEST_CREATE", component="api", instance_id=instance.pk)
    record_action("PROVIDER_CREATE", component="orchestrator", instance_id=instance.pk, duration_ms=1234)

    html = viewer.get(f"/instances/{instance.pk}/").content.decode()

    assert "HEARTBEAT_LOST" in html and "No heartbeat for 180 s" in html
    assert html.index('data-action="REQUEST_CREATE"') < html.index('data-action="PROVIDER_CREATE"')
    assert 'class="badge orange"' in html and "1234 ms" in html


def test_terminating_from_a_row_answers_with_the_fresh_row(staff, mock_cloud, django_capture_on_commit_callbacks):
    instance = make_instance(status=Status.READY)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/instances/{instance.pk}/terminate/", HTTP_HX_TARGET=f"instance-{instance.pk}", **HTMX)
    assert Instance.objects.get(pk=instance.pk).status in (Status.TERMINATING, Status.TERMINATED)
    assert f'id="instance-{instance.pk}"' in response.content.decode()


def test_archiving_from_the_detail_page_links_to_the_traces(staff, mock_cloud):
    instance = make_instance(status=Status.TERMINATED, with_server=False)
    response = staff.post(f"/instances/{instance.pk}/archive/", HTTP_HX_TARGET="instance-detail", **HTMX)
    assert Instance.objects.get(pk=instance.pk).status == Status.ARCHIVED
    assert 'id="instance-detail"' in response.content.decode()
    assert 'href="/instances/archived/"' in response.content.decode()


def test_archiving_a_running_instance_is_refused_with_the_reason(staff, mock_cloud):
    instance = make_instance(status=Status.READY, with_server=False)
    response = staff.post(f"/instances/{instance.pk}/archive/", HTTP_HX_TARGET=f"instance-{instance.pk}", **HTMX)
    assert "terminate it first" in response.content.decode()
    assert Instance.objects.get(pk=instance.pk).status == Status.READY


def test_the_traces_page_lists_archived_instances_only(viewer, mock_cloud):
    archived = make_instance(status=Status.ARCHIVED, with_server=False, deletion_reason="operator request")
    active = make_instance(status=Status.READY, with_server=False)
    html = viewer.get("/instances/archived/").content.decode()
    assert f'href="/instances/{archived.pk}/"' in html and "operator request" in html
    assert str(active.pk) not in html


def test_the_pages_need_a_signed_in_user(client, db):
    for url in ("/instances/", "/instances/archived/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_admin_shows_instances_read_only_without_their_secrets(staff, mock_cloud):
    instance = make_instance(status=Status.READY, with_server=False, worker_token_hash="f" * 64,
                             engine_api_key_encrypted="ciphertext")
    assert str(instance.pk) in staff.get("/admin/instances/instance/").content.decode()
    page = staff.get(f"/admin/instances/instance/{instance.pk}/change/").content.decode()
    assert "ready" in page and "f" * 64 not in page and "ciphertext" not in page
    assert staff.get("/admin/instances/instance/add/").status_code == 403


def test_the_admin_archive_action_refuses_a_running_instance(staff, mock_cloud):
    ready = make_instance(status=Status.READY, with_server=False)
    done = make_instance(status=Status.TERMINATED, with_server=False)
    staff.post("/admin/instances/instance/", {"action": "archive", "_selected_action": [ready.pk, done.pk]})
    assert Instance.objects.get(pk=ready.pk).status == Status.READY
    assert Instance.objects.get(pk=done.pk).status == Status.ARCHIVED
