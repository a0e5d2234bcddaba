"""The pools API: staff define, change and delete pools; everyone signed in reads them and their history.
A refused definition answers 400 naming the field and the reason, and nothing is saved."""

from datetime import timedelta

import pytest
from django.utils import timezone

from autoscaling.models import Pool, PoolChoice, PoolSample
from autoscaling.pools import Choice, create_pool
from catalog.models import InstanceType, LlmModel, Zone
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import make_instance
from monitoring.models import ActionLog

pytestmark = pytest.mark.django_db

MOCK_S = {"instance_type": "MOCK-GPU-S", "zone": "mock-eu-1"}
MOCK_M = {"instance_type": "MOCK-4GPU-M", "zone": "mock-eu-1"}
L4_PARIS = {"instance_type": "L4-1-24G", "zone": "fr-par-2"}
BIG_MODEL = "Qwen/Qwen2.5-72B-Instruct"  # 160 GB of VRAM: no single L4 holds it


def choice(type_code: str, zone_code: str) -> Choice:
    return Choice(InstanceType.objects.get(code=type_code), Zone.objects.get(code=zone_code))


def new_pool(name: str = "echo", *, model: str = "mock-echo", choices=(("MOCK-GPU-S", "mock-eu-1"),), **settings):
    return create_pool(name=name, model=LlmModel.objects.get(code=model),
                       choices=[choice(*pair) for pair in choices], **settings)


def body(**changes) -> dict:
    return {"name": "echo", "model": "mock-echo", "choices": [MOCK_S], **changes}


def test_staff_create_a_pool_with_its_choices_in_order(seed, api):
    response = api.post("/api/pools/", body(choices=[MOCK_M, MOCK_S], max_size=3, ttft_p95_objective_s=1.5),
                        format="json")

    assert response.status_code == 201, response.json()
    pool = response.json()
    assert pool["name"] == "echo" and pool["model"] == "mock-echo"
    assert [(c["position"], c["instance_type"], c["zone"]) for c in pool["choices"]] == [
        (1, "MOCK-4GPU-M", "mock-eu-1"), (2, "MOCK-GPU-S", "mock-eu-1"),
    ]
    assert (pool["min_size"], pool["max_size"], pool["scale_to_zero"], pool["enabled"]) == (1, 3, False, True)
    assert pool["ttft_p95_objective_s"] == 1.5
    assert pool["size"] == {"ready": 0, "starting": 0, "draining": 0}
    assert pool["signals"] is None
    log = ActionLog.objects.get(action_type="SCALE_DECISION", metadata__pool="echo")
    assert log.metadata["source"] == "api" and log.metadata["change"] == "created" and log.user.username == "admin"
    assert log.metadata["changes"]["max_size"] == {"before": None, "after": 3}


def test_a_pool_reads_its_members_by_phase_and_the_latest_signals(seed, api):
    pool = new_pool(max_size=5)
    for status in (Status.READY, Status.BOOTING, Status.PROVISIONING, Status.DRAINING, Status.TERMINATED):
        make_instance(status=status, with_server=False, pool=pool)
    make_instance(status=Status.READY, with_server=False)  # no pool: not counted
    now = timezone.now()
    PoolSample.objects.create(pool=pool, at=now - timedelta(minutes=1), in_flight=1, reason="old")
    PoolSample.objects.create(pool=pool, at=now, ready=1, starting=2, desired=4, in_flight=7, waiting=2, held=1,
                              ttft_p95_s=0.4, kv_cache_usage=0.5, reason="scale up: load 10 over target 8")
    Pool.objects.filter(pk=pool.pk).update(desired_size=4, last_reason="scale up: load 10 over target 8",
                                           last_decision_at=now)

    listed = api.get("/api/pools/").json()["results"]
    read = api.get("/api/pools/echo/").json()

    assert listed == [read]
    assert read["size"] == {"ready": 1, "starting": 2, "draining": 1}
    assert read["desired_size"] == 4 and read["last_reason"] == "scale up: load 10 over target 8"
    assert read["signals"]["in_flight"] == 7 and read["signals"]["waiting"] == 2 and read["signals"]["held"] == 1
    assert read["signals"]["ttft_p95_s"] == 0.4 and read["signals"]["kv_cache_usage"] == 0.5


def test_a_viewer_reads_pools_but_cannot_change_them(seed, viewer_api):
    new_pool()

    assert viewer_api.get("/api/pools/echo/").status_code == 200
    assert viewer_api.post("/api/pools/", body(name="other"), format="json").status_code == 403
    assert viewer_api.patch("/api/pools/echo/", {"max_size": 2}, format="json").status_code == 403
    assert viewer_api.delete("/api/pools/echo/").status_code == 403
    assert Pool.objects.get().max_size == 1


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"min_size": 3, "max_size": 2}, "min_size", "min_size 3 is above max_size 2"),
        ({"model": BIG_MODEL, "choices": [L4_PARIS]}, "choices", "needs 160 GB of VRAM; L4-1-24G has 1 x 24 GB"),
        ({"model": BIG_MODEL, "choices": [{"instance_type": "H100-1-80G", "zone": "fr-par-1"}]}, "choices",
         "#1: H100-1-80G is not offered in fr-par-1"),
        ({"choices": [MOCK_S, L4_PARIS]}, "choices", "#2: mock-echo is simulated and runs only on Mock machines"),
        ({"choices": [{"instance_type": "MOCK-GPU-S", "zone": "fr-par-2"}]}, "choices",
         "#1: fr-par-2 belongs to scaleway, not mock"),
        ({"choices": [MOCK_S, MOCK_S]}, "choices", "#2: MOCK-GPU-S in mock-eu-1 is already choice #1"),
        ({"choices": []}, "choices", "At least one (instance type, zone) is needed"),
        ({"choices": [{"instance_type": "MOCK-GPU-S", "zone": "mars-1"}]}, "choices", "No zone has code mars-1"),
        ({"model": "no/such-model"}, "model", "no/such-model"),
        ({"max_size": 0, "min_size": 0, "scale_to_zero": True}, "max_size", "greater than or equal to 1"),
        ({"target_in_flight": 0}, "target_in_flight", "must be more than 0"),
        ({"scale_up_window_s": 300, "scale_down_window_s": 120}, "scale_up_window_s", "longer than scale_down_window_s"),
        ({"scale_to_zero": True, "min_size": 1}, "scale_to_zero", "needs min_size 0"),
        ({"min_size": 0}, "min_size", "tick scale_to_zero too"),
        ({"hold_queue_size": 0}, "hold_queue_size", ""),
        ({"name": "new"}, "name", "reserved"),
        ({"name": "not a slug"}, "name", ""),
    ],
)
def test_an_invalid_pool_is_refused_naming_the_field_and_nothing_is_saved(seed, api, changes, field, reason):
    response = api.post("/api/pools/", body(**changes), format="json")

    assert response.status_code == 400
    # Nested reasons are named by their path: `choices.0.zone` is about `choices`.
    reasons = {name: text for name, text in response.json()["error"]["fields"].items()
               if name == field or name.startswith(f"{field}.")}
    assert reasons, response.json()
    assert reason in str(reasons)
    assert not Pool.objects.exists() and not PoolChoice.objects.exists() and not ActionLog.objects.exists()


def test_an_inactive_model_is_refused(seed, api):
    LlmModel.objects.filter(code="mock-echo").update(active=False)

    response = api.post("/api/pools/", body(), format="json")

    assert response.status_code == 400 and "mock-echo is not active" in str(response.json()["error"]["fields"]["model"])


def test_a_second_pool_of_the_same_name_is_refused(seed, api):
    new_pool()

    response = api.post("/api/pools/", body(), format="json")

    assert response.status_code == 400 and "already exists" in str(response.json()["error"]["fields"]["name"])
    assert Pool.objects.count() == 1


def test_patch_changes_what_it_names_and_replaces_the_choices_in_order(seed, api):
    new_pool(max_size=2)

    response = api.patch("/api/pools/echo/", {"max_size": 4, "choices": [MOCK_M, MOCK_S]}, format="json")

    assert response.status_code == 200, response.json()
    pool = Pool.objects.get()
    assert (pool.max_size, pool.min_size) == (4, 1)
    assert [(c.position, c.instance_type.code) for c in pool.choices.all()] == [(1, "MOCK-4GPU-M"), (2, "MOCK-GPU-S")]
    log = ActionLog.objects.filter(metadata__change="updated").get()
    assert log.metadata["changes"]["max_size"] == {"before": 2, "after": 4}
    assert log.metadata["changes"]["choices"]["after"] == ["MOCK-4GPU-M in mock-eu-1", "MOCK-GPU-S in mock-eu-1"]


def test_an_invalid_patch_changes_nothing(seed, api):
    new_pool(max_size=3)

    response = api.patch("/api/pools/echo/", {"min_size": 5, "choices": [MOCK_M]}, format="json")

    assert response.status_code == 400 and "min_size 5 is above max_size 3" in str(response.json()["error"]["fields"]["min_size"])
    pool = Pool.objects.get()
    assert pool.min_size == 1 and [c.instance_type.code for c in pool.choices.all()] == ["MOCK-GPU-S"]


def test_a_patch_keeps_working_after_the_catalog_retires_a_choice(seed, api):
    new_pool(max_size=3)
    Zone.objects.filter(code="mock-eu-1").update(active=False)

    assert api.patch("/api/pools/echo/", {"max_size": 1}, format="json").status_code == 200
    response = api.patch("/api/pools/echo/", {"choices": [MOCK_M]}, format="json")
    assert response.status_code == 400 and "#1: zone mock-eu-1 is not active" in str(response.json()["error"]["fields"]["choices"])


def test_the_model_of_a_pool_with_live_members_does_not_change(seed, api):
    LlmModel.objects.filter(code="Qwen/Qwen2.5-0.5B-Instruct").update(allow_simulator=True)
    pool = new_pool()
    make_instance(status=Status.READY, with_server=False, pool=pool)

    response = api.patch("/api/pools/echo/", {"model": "Qwen/Qwen2.5-0.5B-Instruct"}, format="json")

    assert response.status_code == 400 and "live instance(s) serve mock-echo" in str(response.json()["error"]["fields"]["model"])


def test_a_name_in_the_body_of_a_patch_is_ignored(seed, api):
    new_pool()

    assert api.patch("/api/pools/echo/", {"name": "renamed", "max_size": 2}, format="json").status_code == 200
    assert Pool.objects.get().name == "echo"


def test_deleting_a_pool_without_live_members_keeps_its_past_instances(seed, api):
    pool = new_pool()
    past = make_instance(status=Status.TERMINATED, with_server=False, pool=pool)
    PoolSample.objects.create(pool=pool, at=timezone.now())

    assert api.delete("/api/pools/echo/").status_code == 204

    assert not Pool.objects.exists() and not PoolChoice.objects.exists() and not PoolSample.objects.exists()
    assert Instance.objects.get(pk=past.pk).pool is None
    assert ActionLog.objects.filter(metadata__pool="echo", metadata__change="deleted").exists()


def test_deleting_a_pool_with_live_members_is_refused_with_409(seed, api):
    pool = new_pool()
    make_instance(status=Status.STARTING, with_server=False, pool=pool)

    response = api.delete("/api/pools/echo/")

    assert response.status_code == 409 and "still has 1 live instance" in response.json()["error"]["message"]
    assert Pool.objects.filter(name="echo").exists()


def test_deleting_a_pool_a_tick_is_deciding_for_is_refused(seed, api):
    pool = new_pool()
    Pool.objects.filter(pk=pool.pk).update(claimed_until=timezone.now() + timedelta(seconds=30))

    assert api.delete("/api/pools/echo/").status_code == 409
    assert Pool.objects.exists()


def test_samples_cover_the_minutes_asked_oldest_first(seed, viewer_api):
    pool = new_pool()
    now = timezone.now()
    for minutes_ago in (90, 30, 5):
        PoolSample.objects.create(pool=pool, at=now - timedelta(minutes=minutes_ago), desired=minutes_ago)

    assert [s["desired"] for s in viewer_api.get("/api/pools/echo/samples/").json()["results"]] == [30, 5]
    assert [s["desired"] for s in viewer_api.get("/api/pools/echo/samples/?minutes=120").json()["results"]] == [90, 30, 5]
    assert viewer_api.get("/api/pools/echo/samples/?minutes=0").status_code == 400
    assert viewer_api.get("/api/pools/nope/samples/").status_code == 404
