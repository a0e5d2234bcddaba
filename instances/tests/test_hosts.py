"""Hosts you run yourself: registration (staff, audited, the join token shown once and kept as a hash),
the join that spends the token for a worker token, and the lifecycle after it: ready by heartbeat,
terminate = detach, priced at the operator's price."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import InstanceType, Provider, Zone
from instances.credentials import engine_api_key, hash_token
from instances.draining import DRAIN_SETTLE_S
from instances.models import Instance, JoinToken
from instances.status import Status
from instances.termination import terminate_instance
from instances.tests.factories import action_types, fresh, run_on_commit
from instances.tests.worker_factories import heartbeat, post, register
from monitoring.models import ActionLog
from providers.models import StaticMachine

pytestmark = pytest.mark.django_db

HOST = {"address": "10.1.2.3", "instance_type": "L4-1-24G", "zone": "Home lab", "hourly_price": "0.35"}
ENGINE_KEY = "operator-chosen-engine-key"


def register_host(api, **overrides):
    with run_on_commit():
        return api.post("/api/hosts/", {**HOST, **overrides}, format="json")


def join(token, **overrides):
    payload = {"join_token": token, "model": "Qwen/Qwen2.5-7B-Instruct", "engine_port": 8001,
               "engine_api_key": ENGINE_KEY, **overrides}
    return post("join", payload, token=None)


def test_registering_a_host_makes_a_static_instance_waiting_for_its_agent(seed, api):
    response = register_host(api, model="Qwen/Qwen2.5-7B-Instruct")

    assert response.status_code == 201, response.content
    body = response.json()
    instance = Instance.objects.get(pk=body["instance"]["id"])
    assert instance.status == Status.INSTALLING  # attached at once; the agent has not joined yet
    assert (instance.provider.code, instance.provider.adapter) == ("static", "static")
    assert instance.zone.code == "home-lab" and Zone.objects.get(code="home-lab").name == "Home lab"
    assert instance.public_ip == "10.1.2.3" and instance.cost_per_hour == Decimal("0.35")
    # The GPU type is the catalog's L4, copied into the static provider so the planner can advise.
    static_type = InstanceType.objects.get(provider__code="static", code="L4-1-24G")
    assert static_type.compute_capability == Decimal("8.9") and instance.instance_type == static_type
    assert body["plan_fits"] is True
    # The token is shown once: only its hash is kept, and it expires in 24 h by default.
    token = body["join_token"]
    stored = JoinToken.objects.get(instance=instance)
    assert stored.token_hash == hash_token(token) and token not in str(JoinToken.objects.values().get())
    assert timedelta(hours=23) < stored.expires_at - timezone.now() <= timedelta(hours=24)
    assert StaticMachine.objects.get(instance_id=str(instance.pk)).address == "10.1.2.3"
    audit = ActionLog.objects.get(action_type="HOST_REGISTER")
    assert audit.metadata["source"] == "api" and audit.metadata["changes"]["join_token"]["after"] == "***"
    assert token not in str(ActionLog.objects.values_list("metadata", flat=True))
    assert "CATALOG_CREATE" in set(ActionLog.objects.values_list("action_type", flat=True))


@pytest.mark.parametrize("field, value", [
    ("address", "not-an-ip"), ("instance_type", "NOPE-1"), ("zone", "  "), ("hourly_price", "-1"),
    ("hourly_price", "abc"), ("hourly_price", "0.12345"), ("model", "no/such-model"), ("address", ["10.0.0.1"]),
])
def test_a_bad_field_is_a_400_naming_it_and_nothing_is_stored(seed, api, field, value):
    response = register_host(api, **{field: value})

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Instance.objects.exists() and not Provider.objects.filter(code="static").exists()


def test_only_staff_register_hosts(seed, viewer_api):
    assert viewer_api.post("/api/hosts/", HOST, format="json").status_code == 403
    assert not Instance.objects.exists()


def test_a_static_host_cannot_be_requested_like_a_cloud_machine(seed, api):
    register_host(api)

    with run_on_commit():
        response = api.post("/api/instances/", {"provider": "static", "zone": "home-lab",
                                                "instance_type": "L4-1-24G", "model": "Qwen/Qwen2.5-7B-Instruct"},
                            format="json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_PROVIDER"


def test_the_join_token_is_exchanged_once_for_a_worker_token_and_the_engine_key_is_stored_encrypted(seed, api):
    body = register_host(api).json()

    response = join(body["join_token"])

    assert response.status_code == 200, response.content
    answer = response.json()
    instance = Instance.objects.get(pk=answer["instance_id"])
    assert instance.worker_token_hash == hash_token(answer["worker_token"])
    assert instance.model.code == "Qwen/Qwen2.5-7B-Instruct" and instance.engine_port == 8001
    assert ENGINE_KEY not in instance.engine_api_key_encrypted and engine_api_key(instance) == ENGINE_KEY
    assert "WORKER_JOINED" in action_types(instance)
    again = join(body["join_token"])
    assert again.status_code == 403 and "already used" in again.json()["error"]
    assert fresh(instance).worker_token_hash == hash_token(answer["worker_token"])  # the second join changed nothing


def test_a_wrong_or_missing_join_token_is_a_401_and_an_expired_one_a_403(seed, api):
    body = register_host(api).json()
    assert join("inv-join-wrong").status_code == 401
    assert post("join", {"model": "x"}, token=None).status_code == 401
    JoinToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = join(body["join_token"])

    assert expired.status_code == 403 and "expired" in expired.json()["error"]
    assert not JoinToken.objects.filter(used_at__isnull=False).exists()


@pytest.mark.parametrize("field, value", [("engine_port", 0), ("engine_port", "8001"), ("engine_api_key", "short"),
                                          ("model", ""), ("model", "no/such-model")])
def test_a_bad_join_body_is_a_400_naming_the_field_and_the_token_stays_unspent(seed, api, field, value):
    body = register_host(api).json()

    response = join(body["join_token"], **{field: value})

    assert response.status_code == 400 and field in response.json()["fields"]
    assert JoinToken.objects.get().used_at is None


def test_a_host_registered_for_a_model_refuses_an_agent_serving_another(seed, api):
    body = register_host(api, model="Qwen/Qwen2.5-7B-Instruct").json()

    response = join(body["join_token"], model="mock-echo")

    assert response.status_code == 400 and "Qwen/Qwen2.5-7B-Instruct" in response.json()["fields"]["model"]


def test_a_joined_host_is_ready_by_heartbeat_and_terminate_detaches_it(seed, api):
    body = register_host(api).json()
    answer = join(body["join_token"], model="mock-echo").json()
    instance = Instance.objects.get(pk=answer["instance_id"])
    token = answer["worker_token"]

    assert register(instance, token, model="mock-echo", engine_port=8001).status_code == 200
    assert heartbeat(instance, token, model="mock-echo").status_code == 200
    assert fresh(instance).status == Status.READY

    with run_on_commit():
        terminate_instance(fresh(instance), reason="operator request")

    instance = fresh(instance)
    assert instance.status == Status.TERMINATED
    machine = StaticMachine.objects.get(instance_id=str(instance.pk))
    assert machine.released_at is not None  # detached, not destroyed
    assert heartbeat(instance, token, model="mock-echo").status_code == 401  # its worker token is revoked
    refused = join(body["join_token"], model="mock-echo")
    assert refused.status_code == 403


def test_the_register_page_shows_the_token_once_and_names_bad_fields(seed, admin_client):
    page = admin_client.get("/instances/hosts/new/")
    assert page.status_code == 200 and b"L4-1-24G" in page.content

    bad = admin_client.post("/instances/hosts/new/", {**HOST, "address": "nope"})
    assert bad.status_code == 200 and b'data-error="address"' in bad.content and not Instance.objects.exists()

    with run_on_commit():
        done = admin_client.post("/instances/hosts/new/", HOST)

    instance = Instance.objects.get()
    token = done.content.decode().split('<code id="join-token">')[1].split("</code>")[0]
    assert JoinToken.objects.get(instance=instance).token_hash == hash_token(token)
    assert ActionLog.objects.get(action_type="HOST_REGISTER").metadata["source"] == "page"
    detail = admin_client.get(f"/instances/{instance.pk}/").content.decode()
    assert token not in detail and "it is detached" in detail and "will be deleted" not in detail
    assert admin_client.get("/admin/instances/jointoken/").status_code == 200


def test_the_rent_form_offers_no_zone_of_hosts_you_run(seed, api, admin_client):
    register_host(api)

    page = admin_client.get("/instances/").content.decode()
    assert "home-lab</td>" in page  # the host is listed
    assert "home-lab · " not in page and "mock-eu-1 · " in page  # but its zone is not offered for rent


def test_finops_counts_the_operators_price_from_registration_until_the_detach(seed, api):
    from finops.services import cost_rows

    instance = Instance.objects.get(pk=register_host(api, hourly_price="0.60").json()["instance"]["id"])
    start = instance.provider_created_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    Instance.objects.filter(pk=instance.pk).update(provider_created_at=start,
                                                   terminated_at=start + timedelta(minutes=2))

    rows = cost_rows(start=start, end=start + timedelta(minutes=5))

    assert [(row.provider, row.amount) for row in rows] == [("static", Decimal("0.01"))] * 2


def test_nul_characters_are_a_400_on_both_doors(seed, api):
    assert register_host(api, zone="home\x00lab").status_code == 400
    body = register_host(api).json()

    response = join(body["join_token"], model="mock\x00echo")

    assert response.status_code == 400 and "model" in response.json()["fields"]


def test_a_pool_cannot_choose_a_host_you_run_yourself(seed, api):
    from autoscaling.pools import Choice, choice_errors
    from catalog.models import LlmModel

    register_host(api)
    static_type = InstanceType.objects.get(provider__code="static", code="L4-1-24G")

    errors = choice_errors(LlmModel.objects.get(code="mock-echo"), [Choice(static_type, Zone.objects.get(code="home-lab"))])

    assert errors and "host you run yourself" in errors[0]


def test_a_joined_host_drains_like_any_instance_and_is_detached_once_empty(seed, api):
    answer = join(register_host(api).json()["join_token"], model="mock-echo").json()
    instance, token = Instance.objects.get(pk=answer["instance_id"]), answer["worker_token"]
    register(instance, token, model="mock-echo", engine_port=8001)
    heartbeat(instance, token, model="mock-echo")

    with run_on_commit():
        drained = api.post(f"/api/instances/{instance.pk}/drain/", {}, format="json")
    assert drained.status_code == 202 and fresh(instance).status == Status.DRAINING
    # The drain trusts only a heartbeat sent a moment after it began (instances/draining.py).
    Instance.objects.filter(pk=instance.pk).update(draining_at=timezone.now() - timedelta(seconds=DRAIN_SETTLE_S + 1))
    told = heartbeat(instance, token, status="draining", model="mock-echo", in_flight=0,
                     engine={"running": 0, "waiting": 0})

    assert told.json()["action"] == "drain"
    assert fresh(instance).status == Status.TERMINATED
    assert StaticMachine.objects.get(instance_id=str(instance.pk)).released_at is not None


def test_a_second_host_of_the_same_type_and_zone_reuses_the_static_rows_at_its_own_price(seed, api):
    first = register_host(api).json()
    second = register_host(api, address="10.1.2.4", hourly_price="0.42").json()

    assert InstanceType.objects.filter(provider__code="static").count() == 1
    assert Zone.objects.filter(region__provider__code="static").count() == 1
    assert ActionLog.objects.filter(action_type="CATALOG_CREATE").count() == 5  # provider, region, zone, type, offer
    assert ActionLog.objects.filter(action_type="HOST_REGISTER").count() == 2
    assert [first["instance"]["cost_per_hour"], second["instance"]["cost_per_hour"]] == ["0.3500", "0.4200"]
    assert first["join_token"] != second["join_token"]
