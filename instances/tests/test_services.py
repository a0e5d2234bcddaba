"""request_instance validation, provider errors, idempotent provisioning and per-instance credentials."""

import json
import re

import pytest

from autoscaling.tests.factories import make_pool
from catalog.launch_plan import VLLM_IMAGE
from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, Zone
from instances.credentials import engine_api_key, mint_credentials, verify_worker_token
from instances.models import Instance
from instances.status import ErrorCode, Status
from instances.termination import terminate_instance
from instances.provisioning import provision_instance
from instances.requests import request_instance
from instances.tests.factories import (  # noqa: F401 (fixtures)
    MOCK_REQUEST,
    action_types,
    committed,
    create_mock_server,
    fresh,
    make_instance,
    mock_cloud,
    request_mock,
    scaleway_cloud,
    servers_of,
)
from monitoring.models import ActionLog
from providers.mock import inject_fault
from providers.models import MockServer

pytestmark = pytest.mark.django_db


def _deactivate(model, **lookup):
    model.objects.filter(**lookup).update(active=False)


REJECTIONS = [
    ({"provider": None}, ErrorCode.MISSING_PARAMS, None),
    ({"zone": "  "}, ErrorCode.MISSING_PARAMS, None),
    ({"instance_type": ""}, ErrorCode.MISSING_PARAMS, None),
    ({"model": None}, ErrorCode.MISSING_MODEL, None),
    ({"provider": "azure"}, ErrorCode.INVALID_PROVIDER, None),
    ({}, ErrorCode.INVALID_PROVIDER, lambda: _deactivate(Provider, code="mock")),
    ({"zone": "fr-par-2"}, ErrorCode.INVALID_ZONE, None),
    ({}, ErrorCode.INACTIVE_ZONE, lambda: _deactivate(Zone, code="mock-eu-1")),
    ({}, ErrorCode.INACTIVE_ZONE, lambda: _deactivate(Region, code="mock-eu")),
    ({"instance_type": "L4-1-24G"}, ErrorCode.INVALID_INSTANCE_TYPE, None),
    ({}, ErrorCode.INACTIVE_INSTANCE_TYPE, lambda: _deactivate(InstanceType, code="MOCK-GPU-S")),
    ({}, ErrorCode.INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE,
     lambda: InstanceTypeZone.objects.filter(instance_type__code="MOCK-GPU-S").delete()),
    ({"model": "acme/unknown-7b"}, ErrorCode.INVALID_MODEL, None),
    ({}, ErrorCode.INVALID_MODEL, lambda: _deactivate(LlmModel, code="mock-echo")),
    ({"model": "Qwen/Qwen2.5-7B-Instruct"}, ErrorCode.INCOMPATIBLE_MODEL_INSTANCE, None),
]


@pytest.mark.parametrize(("overrides", "code", "prepare"), REJECTIONS)
def test_an_invalid_request_is_stored_as_provisioning_failed_with_its_code(mock_cloud, overrides, code, prepare):
    if prepare:
        prepare()

    instance = request_mock(**overrides)

    instance = fresh(instance)
    assert instance.status == Status.PROVISIONING_FAILED
    assert instance.error_code == code
    assert instance.error_message
    assert instance.failed_at is not None
    assert action_types(instance) == ["REQUEST_CREATE"]
    row = ActionLog.objects.get(instance_id=instance.pk)
    assert (row.status, row.error_code, row.component) == ("failed", code, "api")
    assert MockServer.objects.count() == 0


def test_a_scaleway_type_outside_its_zones_is_not_available_there(mock_cloud):
    instance = request_instance(provider="scaleway", zone="fr-par-1", instance_type="L4-1-24G",
                                model="Qwen/Qwen2.5-0.5B-Instruct")

    assert instance.error_code == ErrorCode.INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE
    assert "fr-par-1" in instance.error_message


def test_a_rejected_request_keeps_what_it_asked_for_and_what_was_found(mock_cloud):
    instance = fresh(request_mock(model="acme/unknown-7b"))

    assert instance.requested == {**MOCK_REQUEST, "model": "acme/unknown-7b"}
    assert (instance.provider.code, instance.zone.code, instance.instance_type.code) == (
        "mock", "mock-eu-1", "MOCK-GPU-S")
    assert instance.model is None


def test_a_pool_request_is_logged_as_the_autoscalers(mock_cloud):
    pool = make_pool()
    instance = request_mock(pool_id=pool.pk)

    assert fresh(instance).pool_id == pool.pk
    assert fresh(instance).requested["pool_id"] == str(pool.pk)
    assert ActionLog.objects.get(instance_id=instance.pk, action_type="REQUEST_CREATE").component == "autoscaler"


def test_a_permanent_create_error_fails_the_instance_without_a_server(mock_cloud):
    inject_fault("create_fails", message="API said no")

    instance = fresh(request_mock())

    assert instance.status == Status.PROVISIONING_FAILED
    assert instance.error_code == ErrorCode.PROVIDER_CREATE_FAILED
    assert "API said no" in instance.error_message
    assert instance.provider_server_id == ""
    assert MockServer.objects.count() == 0
    assert action_types(instance) == ["REQUEST_CREATE", "EXECUTE_CREATE", "PROVIDER_CREATE", "EXECUTE_CREATE"]


@pytest.mark.parametrize(("kind", "code"), [
    ("out_of_stock", ErrorCode.PROVIDER_OUT_OF_STOCK),
    ("quota_exceeded", ErrorCode.PROVIDER_QUOTA_EXCEEDED),
])
def test_out_of_stock_and_quota_errors_keep_their_own_code(mock_cloud, kind, code):
    inject_fault(kind, zone="mock-eu-1", commercial_type="MOCK-GPU-S")

    instance = fresh(request_mock())

    assert (instance.status, instance.error_code) == (Status.PROVISIONING_FAILED, code)
    assert MockServer.objects.count() == 0


def test_a_fault_for_another_type_does_not_touch_this_request(mock_cloud):
    inject_fault("out_of_stock", commercial_type="MOCK-4GPU-M")

    assert fresh(request_mock()).status == Status.READY


def test_a_transient_create_error_is_retried_and_creates_one_server(mock_cloud):
    inject_fault("create_fails", permanent=False, remaining=2)

    instance = fresh(request_mock())

    assert instance.status == Status.READY
    assert servers_of(instance).count() == 1
    creates = ActionLog.objects.filter(instance_id=instance.pk, action_type="PROVIDER_CREATE")
    assert list(creates.order_by("id").values_list("status", flat=True)) == ["failed", "failed", "success"]


def test_a_transient_error_that_never_clears_leaves_the_provision_to_the_sweep(mock_cloud):
    inject_fault("create_fails", permanent=False, remaining=None)

    instance = fresh(request_mock())

    assert instance.status == Status.PROVISIONING
    assert instance.claimed_until is None
    assert MockServer.objects.count() == 0
    # The first run and every bounded retry tried once each.
    assert ActionLog.objects.filter(instance_id=instance.pk, action_type="PROVIDER_CREATE").count() == 6


def test_a_power_on_failure_fails_the_instance_and_deletes_its_server(mock_cloud):
    inject_fault("start_fails")

    instance = fresh(request_mock())

    assert instance.status == Status.TERMINATED
    assert instance.error_code == ErrorCode.PROVIDER_START_FAILED
    assert instance.deletion_reason == ErrorCode.PROVIDER_START_FAILED
    assert servers_of(instance).get().deleted_at is not None
    failed = ActionLog.objects.get(instance_id=instance.pk, instance_status_after=Status.PROVISIONING_FAILED)
    assert failed.error_code == ErrorCode.PROVIDER_START_FAILED


def test_running_provision_again_on_a_ready_instance_does_nothing(mock_cloud):
    instance = request_mock()
    logged = action_types(instance)

    provision_instance(instance.pk)
    provision_instance(instance.pk)

    assert servers_of(instance).count() == 1
    assert action_types(instance) == logged


def test_a_provision_killed_after_the_create_finds_its_server_again(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING, with_server=False)
    # What a worker killed inside the create call leaves behind: its claim counted, the credentials it stored,
    # and a server that Inventiv never recorded.
    Instance.objects.filter(pk=instance.pk).update(provision_attempts=1, **mint_credentials().stored_fields())
    earlier = create_mock_server(str(instance.pk), started=False)

    provision_instance(instance.pk)

    instance = fresh(instance)
    assert instance.status == Status.READY
    assert instance.provider_server_id == earlier.server_id
    assert servers_of(instance).count() == 1


def test_a_provision_with_a_stored_server_id_skips_the_create(mock_cloud):
    instance = make_instance(status=Status.PROVISIONING, started=False)
    # The server holds the credentials stored before it was created: a run that resumes keeps them.
    Instance.objects.filter(pk=instance.pk).update(**mint_credentials().stored_fields())
    stored = Instance.objects.values_list("worker_token_hash", "engine_api_key_encrypted").get(pk=instance.pk)

    provision_instance(instance.pk)

    assert fresh(instance).status == Status.READY
    assert "PROVIDER_CREATE" not in action_types(instance)
    assert servers_of(instance).count() == 1
    assert Instance.objects.values_list("worker_token_hash", "engine_api_key_encrypted").get(pk=instance.pk) == stored


def test_a_provider_without_credentials_fails_with_missing_credentials(mock_cloud, monkeypatch, committed):
    for name in ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)

    with committed():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                    model="Qwen/Qwen2.5-0.5B-Instruct")

    instance = fresh(instance)

    assert (instance.status, instance.error_code) == (Status.PROVISIONING_FAILED,
                                                      ErrorCode.MISSING_PROVIDER_CREDENTIALS)
    assert "credentials" in instance.error_message


def test_the_machine_gets_its_credentials_and_inventiv_keeps_only_a_hash_and_a_ciphertext(mock_cloud):
    instance = fresh(request_mock())
    env = servers_of(instance).get().runtime_env
    token, key = env["INVENTIV_WORKER_TOKEN"], env["INVENTIV_ENGINE_API_KEY"]

    assert re.fullmatch(r"[0-9a-f]{64}", instance.worker_token_hash)
    assert verify_worker_token(instance, token)
    assert not verify_worker_token(instance, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not verify_worker_token(instance, "")
    assert engine_api_key(instance) == key
    assert env["INVENTIV_INSTANCE_ID"] == str(instance.pk) and env["INVENTIV_MODEL"] == "mock-echo"
    stored = " ".join(str(value) for value in Instance.objects.filter(pk=instance.pk).values().get().values())
    logged = " ".join(str(row) for row in ActionLog.objects.filter(instance_id=instance.pk).values())
    for secret in (token, key):
        assert secret not in stored and secret not in logged


def test_every_instance_gets_its_own_credentials(mock_cloud):
    first, second = fresh(request_mock()), fresh(request_mock())

    assert first.worker_token_hash != second.worker_token_hash
    assert engine_api_key(first) != engine_api_key(second)
    assert not verify_worker_token(second, servers_of(first).get().runtime_env["INVENTIV_WORKER_TOKEN"])


def test_a_scaleway_machine_boots_with_cloud_init_and_waits_for_its_worker_agent(scaleway_cloud, committed):
    with committed():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-2-24G",
                                    model="Qwen/Qwen2.5-7B-Instruct")

    instance = fresh(instance)

    # Machines that run the worker agent become ready by heartbeat, not by the provider's word.
    assert instance.status == Status.INSTALLING
    assert instance.public_ip
    user_data = scaleway_cloud.user_data[instance.provider_server_id]["cloud-init"].decode()
    assert user_data.startswith("#cloud-config")
    token = re.search(r"INVENTIV_WORKER_TOKEN=(\S+)", user_data).group(1).strip("'\"")
    assert verify_worker_token(instance, token)
    # The launch plan's engine, arguments and root volume: 28 heads, so one GPU per replica and two replicas.
    assert "--entrypoint vllm \"$INVENTIV_VLLM_IMAGE\"" in user_data and VLLM_IMAGE in user_data
    assert "--tensor-parallel-size 1 --data-parallel-size 2 --max-model-len 32768" in user_data
    assert "HF_TOKEN" not in user_data  # Qwen is not gated
    sent = scaleway_cloud.requests_to(r"/servers$", method="POST")[0].json()
    assert sent["image"] == "ubuntu_noble_gpu_os_13_nvidia"
    assert sent["volumes"]["0"]["volume_type"] == "sbs_volume" and sent["volumes"]["0"]["size"] == 80 * 10**9
    assert action_types(instance)[-2:] == ["INSTANCE_CREATED", "HEALTH_CHECK"]


def test_a_gated_model_gets_the_hugging_face_token_and_only_it_does(scaleway_cloud, committed, settings):
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": "hf_gated_access"}
    with committed():
        gated = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                 model="meta-llama/Llama-3.1-8B-Instruct")
        open_model = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                      model="Qwen/Qwen2.5-0.5B-Instruct")

    gated, open_model = fresh(gated), fresh(open_model)
    assert "HF_TOKEN=hf_gated_access" in scaleway_cloud.user_data[gated.provider_server_id]["cloud-init"].decode()
    assert b"hf_gated_access" not in scaleway_cloud.user_data[open_model.provider_server_id]["cloud-init"]
    logged = json.dumps(list(ActionLog.objects.values("request_payload", "response_payload", "metadata",
                                                      "error_message")), default=str)
    assert "hf_gated_access" not in logged


def test_a_gated_model_without_a_token_fails_before_anything_is_rented(scaleway_cloud, committed):
    with committed():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                    model="meta-llama/Llama-3.1-8B-Instruct")

    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.PROVISIONING_FAILED, ErrorCode.MISSING_MACHINE_SECRET)
    assert "HF_TOKEN not set" in instance.error_message
    assert scaleway_cloud.servers == {}


def test_a_scaleway_create_without_control_plane_ranges_is_refused_with_its_code(scaleway_cloud, committed, settings):
    settings.CONTROL_PLANE_CIDRS = []
    with committed():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                    model="Qwen/Qwen2.5-0.5B-Instruct")

    instance = fresh(instance)
    assert (instance.status, instance.error_code) == (Status.PROVISIONING_FAILED,
                                                      ErrorCode.MISSING_CONTROL_PLANE_CIDRS)
    assert "INVENTIV_CONTROL_PLANE_CIDRS" in instance.error_message
    assert scaleway_cloud.servers == {}


def test_a_scaleway_machine_is_deleted_with_its_volumes_on_terminate(scaleway_cloud, committed):
    with committed():
        instance = request_instance(provider="scaleway", zone="fr-par-2", instance_type="L4-1-24G",
                                    model="Qwen/Qwen2.5-0.5B-Instruct")
    with committed():
        terminate_instance(instance, reason="test")

    instance = fresh(instance)
    assert instance.status == Status.TERMINATED
    assert action_types(instance)[-3:] == ["PROVIDER_TERMINATE", "TERMINATION_CONFIRMED", "INSTANCE_TERMINATED"]
    assert scaleway_cloud.servers == {}
    assert scaleway_cloud.block_volumes == {} and scaleway_cloud.local_volumes == {}
