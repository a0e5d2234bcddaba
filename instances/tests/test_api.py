import pytest

from catalog.models import InstanceType, Zone
from instances.models import Instance
from instances.status import ErrorCode, Status
from instances.tests.factories import MOCK_REQUEST, make_instance, mock_cloud  # noqa: F401 (fixture)

URL = "/api/instances/"
SECRETS = ("worker_token_hash", "engine_api_key_encrypted")


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Tasks are enqueued on commit (eager in tests): run them when the wrapped request's work commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def deactivate(model, code):
    return lambda: model.objects.filter(code=code).update(active=False)


SCALEWAY = {"provider": "scaleway", "zone": "fr-par-2"}
REJECTIONS = [
    ({"zone": None}, ErrorCode.MISSING_PARAMS, None),
    ({"instance_type": ""}, ErrorCode.MISSING_PARAMS, None),
    ({"model": None}, ErrorCode.MISSING_MODEL, None),
    ({"provider": "azure"}, ErrorCode.INVALID_PROVIDER, None),
    ({"zone": "nowhere-1"}, ErrorCode.INVALID_ZONE, None),
    ({}, ErrorCode.INACTIVE_ZONE, deactivate(Zone, "mock-eu-1")),
    ({"instance_type": "MOCK-GPU-XXL"}, ErrorCode.INVALID_INSTANCE_TYPE, None),
    ({}, ErrorCode.INACTIVE_INSTANCE_TYPE, deactivate(InstanceType, "MOCK-GPU-S")),
    ({**SCALEWAY, "zone": "fr-par-1", "instance_type": "L4-1-24G", "model": "Qwen/Qwen2.5-7B-Instruct"},
     ErrorCode.INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE, None),
    ({"model": "acme/unknown-7b"}, ErrorCode.INVALID_MODEL, None),
    ({**SCALEWAY, "instance_type": "GPU-3070-S", "model": "Qwen/Qwen2.5-7B-Instruct"},
     ErrorCode.INCOMPATIBLE_MODEL_INSTANCE, None),
]


@pytest.mark.parametrize(("overrides", "code", "prepare"), REJECTIONS, ids=[r[1] for r in REJECTIONS])
def test_a_rejected_request_is_a_400_with_its_code_and_the_stored_instance(api, mock_cloud, overrides, code, prepare):
    if prepare:
        prepare()
    body = {**MOCK_REQUEST, **overrides}

    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    answer = response.json()["error"]
    assert answer["code"] == code and answer["message"]
    stored = Instance.objects.get(pk=answer["instance"])
    assert (stored.status, stored.error_code, stored.error_message) == (
        Status.PROVISIONING_FAILED, code, answer["message"]
    )


def test_a_request_with_no_body_at_all_is_stored_as_missing_params(api, mock_cloud):
    response = api.post(URL, {}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == ErrorCode.MISSING_PARAMS
    assert response.json()["error"]["fields"] == {"provider": "Required.", "zone": "Required.",
                                                  "instance_type": "Required."}
    assert Instance.objects.filter(pk=response.json()["error"]["instance"]).exists()


@pytest.mark.parametrize("value", [42, ["mock-eu-1"], {"code": "mock-eu-1"}, True])
def test_a_value_that_is_not_a_string_is_a_plain_400_naming_the_field(api, mock_cloud, value):
    response = api.post(URL, {**MOCK_REQUEST, "zone": value}, format="json")
    assert response.status_code == 400
    assert "zone" in response.json()["error"]["fields"]
    assert not Instance.objects.exists()


def test_an_instance_goes_from_request_to_ready_to_terminated_to_the_traces(api, mock_cloud, run_on_commit):
    with run_on_commit():
        response = api.post(URL, MOCK_REQUEST, format="json")
    assert response.status_code == 202
    created = response.json()
    assert created["status"] == Status.PROVISIONING and created["progress_percent"] == 10
    assert (created["zone"], created["instance_type"], created["model"]) == ("mock-eu-1", "MOCK-GPU-S", "mock-echo")
    detail_url = f"{URL}{created['id']}/"

    ready = api.get(detail_url).json()
    assert ready["status"] == Status.READY
    assert (ready["progress_percent"], ready["status_color"], ready["is_transitional"]) == (100, "green", False)
    timeline = [entry["action_type"] for entry in ready["timeline"]]
    assert timeline[0] == "REQUEST_CREATE" and timeline[-1] == "INSTANCE_READY"
    assert {"PROVIDER_CREATE", "INSTANCE_CREATED"} <= set(timeline)
    assert ready["timeline"][0]["type_color"] == "blue" and ready["timeline"][0]["type_label"]

    with run_on_commit():
        terminating = api.post(f"{detail_url}terminate/", {"reason": "test over"}, format="json")
    assert terminating.status_code == 202
    assert api.get(detail_url).json()["status"] == Status.TERMINATED

    archived = api.post(f"{detail_url}archive/")
    assert archived.status_code == 200 and archived.json()["status"] == Status.ARCHIVED
    assert created["id"] not in [row["id"] for row in api.get(URL).json()["results"]]
    assert created["id"] in [row["id"] for row in api.get(URL, {"archived": "1"}).json()["results"]]


def test_terminating_twice_is_harmless(api, mock_cloud, run_on_commit):
    instance = make_instance(status=Status.READY)
    for _ in range(2):
        with run_on_commit():
            response = api.post(f"{URL}{instance.pk}/terminate/")
        assert response.status_code == 202
    assert Instance.objects.get(pk=instance.pk).status == Status.TERMINATED


def test_archiving_an_instance_that_is_not_terminated_is_a_409_saying_why(api, mock_cloud):
    instance = make_instance(status=Status.READY)
    response = api.post(f"{URL}{instance.pk}/archive/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "invalid_status" and error["instance"] == str(instance.pk)
    assert "ready" in error["message"] and "terminate it first" in error["message"]
    assert Instance.objects.get(pk=instance.pk).status == Status.READY


def test_a_ready_instance_can_be_reinstalled_and_a_terminated_one_cannot(api, mock_cloud):
    ready = make_instance(status=Status.READY)
    response = api.post(f"{URL}{ready.pk}/reinstall/")
    assert response.status_code == 202
    assert response.json()["status"] in (Status.INSTALLING, Status.STARTING)

    gone = make_instance(status=Status.TERMINATED, with_server=False)
    assert api.post(f"{URL}{gone.pk}/reinstall/").status_code == 409


def test_reinstalling_a_rejected_request_is_a_409_not_a_crash(api, mock_cloud):
    rejected = api.post(URL, {}, format="json").json()["error"]["instance"]  # no provider, zone or type at all

    response = api.post(f"{URL}{rejected}/reinstall/")

    assert response.status_code == 409
    assert Instance.objects.get(pk=rejected).status == Status.PROVISIONING_FAILED


def test_the_list_filters_by_status_and_placement_and_orders(api, mock_cloud):
    ready = make_instance(status=Status.READY, with_server=False)
    booting = make_instance(status=Status.BOOTING, with_server=False)
    make_instance(status=Status.ARCHIVED, with_server=False)

    def listed(**params):
        return [row["id"] for row in api.get(URL, params).json()["results"]]

    assert listed() == [str(booting.pk), str(ready.pk)]
    assert listed(ordering="created_at") == [str(ready.pk), str(booting.pk)]
    assert listed(status="booting") == [str(booting.pk)]
    assert listed(zone="mock-eu-1", model="mock-echo", instance_type="MOCK-GPU-S", provider="mock") == listed()
    assert listed(zone="fr-par-2") == []
    row = api.get(URL, {"status": "booting"}).json()["results"][0]
    assert (row["progress_percent"], row["status_color"], row["is_transitional"]) == (30, "blue", True)


@pytest.mark.parametrize(("params", "field"), [({"status": "sleeping"}, "status"), ({"archived": "maybe"}, "archived")])
def test_bad_list_parameters_are_a_400_naming_the_field(api, mock_cloud, params, field):
    response = api.get(URL, params)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_secrets_are_never_in_the_api(api, mock_cloud):
    instance = make_instance(status=Status.READY, worker_token_hash="f" * 64, engine_api_key_encrypted="secret")
    for body in (api.get(URL).json()["results"][0], api.get(f"{URL}{instance.pk}/").json()):
        assert not set(SECRETS) & set(body)
        assert "secret" not in str(body) and "f" * 64 not in str(body)


def test_status_counts_every_status(viewer_api, mock_cloud):
    make_instance(status=Status.READY, with_server=False)
    make_instance(status=Status.READY, with_server=False)
    make_instance(status=Status.ARCHIVED, with_server=False)
    body = viewer_api.get("/api/status/").json()
    assert (body["total"], body["active"]) == (3, 2)
    assert body["by_status"]["ready"] == 2 and body["by_status"]["provisioning"] == 0
    assert set(body["by_status"]) == set(Status.values)


def test_a_viewer_reads_but_cannot_create_or_terminate(viewer_api, mock_cloud):
    instance = make_instance(status=Status.READY, with_server=False)
    assert viewer_api.get(URL).status_code == 200
    assert viewer_api.post(URL, MOCK_REQUEST, format="json").status_code == 403
    assert viewer_api.post(f"{URL}{instance.pk}/terminate/").status_code == 403
    assert Instance.objects.count() == 1


def test_an_instance_shows_its_pool_its_worker_status_and_its_heartbeat_age(api, mock_cloud):
    from datetime import timedelta

    from django.utils import timezone

    from autoscaling.tests.factories import make_pool
    from monitoring.models import WorkerState

    pool = make_pool(name="echo")
    member = make_instance(status=Status.READY, pool=pool)
    loner = make_instance(status=Status.BOOTING)
    WorkerState.objects.create(instance_id=member.pk, status=WorkerState.WorkerStatus.READY,
                               last_heartbeat_at=timezone.now() - timedelta(seconds=12))

    listed = api.get(URL, {"pool": pool.pk}).json()
    assert [row["id"] for row in listed["results"]] == [str(member.pk)]
    row = listed["results"][0]
    assert row["pool"] == pool.pk and row["worker_status"] == "ready" and 12 <= row["heartbeat_age_s"] < 60
    shown = api.get(f"{URL}{loner.pk}/").json()
    assert (shown["pool"], shown["worker_status"], shown["heartbeat_age_s"]) == (None, None, None)


def test_a_pool_lists_its_live_members(api, mock_cloud):
    from autoscaling.tests.factories import make_pool

    pool = make_pool(name="echo")
    ready = make_instance(status=Status.READY, pool=pool)
    make_instance(status=Status.TERMINATED, with_server=False, pool=pool)

    listed = api.get("/api/pools/").json()["results"]
    assert [(row["id"], row["members"]) for row in listed] == [(pool.pk, [{"id": str(ready.pk), "status": "ready"}])]
