"""Every operator write to configuration leaves an audit row: who, from where (api, page, admin), which row,
and each changed field before and after, secrets masked (monitoring/audit.py; README, "Audit")."""

import pytest
from django.urls import reverse

from autoscaling.models import Pool
from autoscaling.tests.factories import make_pool
from catalog.models import InstanceType, LlmModel, Region, RuntimeSetting, Zone
from monitoring.audit import MASK, Masked, changes, snapshot
from monitoring.models import ActionLog, ActionType
from router.models import ApiKey
from router.services import create_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def audit_rows(action_type: str) -> list[ActionLog]:
    return list(ActionLog.objects.filter(action_type=action_type).order_by("id"))


def only_row(action_type: str) -> ActionLog:
    (row,) = audit_rows(action_type)
    return row


def assert_audited(row: ActionLog, *, source: str, target: str, changed: dict) -> None:
    assert row.user.username == "admin" and row.component == "api"
    assert (row.metadata["source"], row.metadata["target"]) == (source, target)
    for field, (before, after) in changed.items():
        assert row.metadata["changes"][field] == {"before": before, "after": after}


# --- The service ----------------------------------------------------------------------------------------


def test_a_secret_is_masked_but_its_change_is_seen():
    before = {"hf_token": Masked("hf_old"), "name": "x"}
    after = {"hf_token": Masked("hf_new"), "name": "x"}

    assert changes(before, after) == {"hf_token": {"before": MASK, "after": MASK}}
    assert changes(before, {"hf_token": Masked("hf_old"), "name": "x"}) == {}
    assert changes({"hf_token": Masked(""), "name": "x"}, after) == {"hf_token": {"before": "", "after": MASK}}


def test_a_hash_or_token_field_is_masked_by_its_name(seed):
    api_key, clear = create_api_key(name="ci")

    values = snapshot(api_key)

    assert values["key_hash"] == MASK and values["tokens_per_minute"] is None  # `tokens_...` is no secret
    assert clear not in str(values)


def test_every_new_action_type_is_in_the_catalog(seed):
    codes = set(ActionType.objects.values_list("code", flat=True))
    for area in ("CATALOG", "SETTING", "API_KEY", "BUDGET", "MACHINE_SECRET"):
        assert {f"{area}_CREATE", f"{area}_UPDATE", f"{area}_DELETE"} <= codes
    assert "API_KEY_REVOKE" in codes
    assert set(ActionType.objects.filter(category="audit").values_list("color", flat=True)) == {"green", "blue", "red"}


# --- The REST API --------------------------------------------------------------------------------------


def test_catalog_rows_created_changed_and_deleted_through_the_api_are_audited(seed, api):
    api.post("/api/models/", {"code": "acme/tiny", "name": "Tiny", "vram_required_gb": 2, "context_length": 4096},
             format="json")
    api.patch("/api/models/acme/tiny/", {"vram_required_gb": 4}, format="json")
    api.delete("/api/models/acme/tiny/")

    created, changed, deleted = (only_row(f"CATALOG_{verb}") for verb in ("CREATE", "UPDATE", "DELETE"))
    assert_audited(created, source="api", target="LLM model acme/tiny", changed={"vram_required_gb": (None, 2)})
    assert_audited(changed, source="api", target="LLM model acme/tiny", changed={"vram_required_gb": (2, 4)})
    assert list(changed.metadata["changes"]) == ["vram_required_gb"]  # only what changed
    assert_audited(deleted, source="api", target="LLM model acme/tiny", changed={"vram_required_gb": (4, None)})


def test_a_runtime_setting_and_a_types_zones_changed_through_the_api_are_audited(seed, api):
    api.patch("/api/settings/sweep_interval_s/", {"value": "30"}, format="json")
    api.put("/api/instance-types/RENDER-S/zones/", {"zones": ["fr-par-1", "fr-par-3"]}, format="json")

    assert_audited(only_row("SETTING_UPDATE"), source="api", target="runtime setting sweep_interval_s",
                   changed={"value": ("10", "30")})
    assert_audited(only_row("CATALOG_UPDATE"), source="api", target="instance type RENDER-S",
                   changed={"zones": (["fr-par-1"], ["fr-par-1", "fr-par-3"])})


def test_an_update_that_changes_nothing_writes_no_row(seed, api):
    api.patch("/api/zones/fr-par-2/", {"name": Zone.objects.get(code="fr-par-2").name}, format="json")

    assert audit_rows("CATALOG_UPDATE") == []


def test_api_keys_created_and_revoked_are_audited_without_the_key(seed, api):
    created = api.post("/api/api-keys/", {"name": "ci", "requests_per_minute": 60}, format="json").json()
    api.post(f"/api/api-keys/{created['id']}/revoke/")
    api.post(f"/api/api-keys/{created['id']}/revoke/")  # revoking twice: one row

    row = only_row("API_KEY_CREATE")
    assert_audited(row, source="api", target=f"API key {ApiKey.objects.get().name} ({created['prefix']}…)",
                   changed={"requests_per_minute": (None, 60), "key_hash": (None, MASK)})
    assert created["key"] not in str(ActionLog.objects.values_list("metadata", flat=True))
    revoked = only_row("API_KEY_REVOKE")
    assert revoked.metadata["changes"]["revoked_at"]["before"] is None
    assert revoked.metadata["changes"]["revoked_at"]["after"]


def test_budgets_and_pools_changed_through_the_api_are_audited(seed, api):
    budget = api.post("/api/finops/budgets/", {"pool": "echo", "amount": "100.00"}, format="json").json()
    api.patch(f"/api/finops/budgets/{budget['id']}/", {"amount": "150.00"}, format="json")
    api.post("/api/pools/", {"name": "echo", "model": "mock-echo",
                             "choices": [{"instance_type": "MOCK-GPU-S", "zone": "mock-eu-1"}]}, format="json")

    assert_audited(only_row("BUDGET_CREATE"), source="api", target="budget pool echo: 100.00 EUR/month",
                   changed={"amount": (None, "100.00")})
    assert_audited(only_row("BUDGET_UPDATE"), source="api", target="budget pool echo: 150.00 EUR/month",
                   changed={"amount": ("100.00", "150.00")})
    pool_row = only_row("SCALE_DECISION")
    assert_audited(pool_row, source="api", target="pool echo",
                   changed={"choices": (None, ["MOCK-GPU-S in mock-eu-1"]), "model": (None, "mock-echo")})
    assert pool_row.metadata["pool"] == "echo"  # the pool page lists it


# --- The dashboard pages --------------------------------------------------------------------------------


def test_catalog_rows_and_settings_changed_on_the_settings_pages_are_audited(seed, admin_client):
    zone = Zone.objects.get(code="fr-par-3")
    setting = RuntimeSetting.objects.get(key="sweep_interval_s")
    render = InstanceType.objects.get(code="RENDER-S")

    admin_client.post(reverse("settings-toggle", args=["zones", zone.pk]))
    admin_client.post(reverse("settings-edit", args=["runtime", setting.pk]), {"value": "20"})
    admin_client.post(reverse("settings-zones", args=[render.pk]), {"zones": [render.zones.get().pk, zone.pk]})
    admin_client.post(reverse("settings-create", args=["models"]), {
        "code": "acme/page", "name": "Page", "vram_required_gb": 1, "context_length": 2048, "recommended_disk_gb": 1,
    })

    toggled, zones = audit_rows("CATALOG_UPDATE")
    assert_audited(toggled, source="page", target="zone fr-par-3", changed={"active": (True, False)})
    assert_audited(zones, source="page", target="instance type RENDER-S",
                   changed={"zones": (["fr-par-1"], ["fr-par-1", "fr-par-3"])})
    assert_audited(only_row("SETTING_UPDATE"), source="page", target="runtime setting sweep_interval_s",
                   changed={"value": ("10", "20")})
    assert_audited(only_row("CATALOG_CREATE"), source="page", target="LLM model acme/page",
                   changed={"context_length": (None, 2048)})


def test_a_machine_secret_set_changed_and_cleared_on_its_page_is_audited_masked(seed, admin_client):
    url = reverse("machine-secrets")
    for value in ("hf_first_secret", "hf_second_secret", "hf_second_secret", ""):
        admin_client.post(url, {"name": "HF_TOKEN", "value": value})

    assert_audited(only_row("MACHINE_SECRET_CREATE"), source="page", target="machine secret HF_TOKEN",
                   changed={"value": (None, MASK)})
    assert_audited(only_row("MACHINE_SECRET_UPDATE"), source="page", target="machine secret HF_TOKEN",
                   changed={"value": (MASK, MASK)})  # changed, and the same value again wrote nothing
    assert_audited(only_row("MACHINE_SECRET_DELETE"), source="page", target="machine secret HF_TOKEN",
                   changed={"value": (MASK, None)})
    assert "hf_" not in str(ActionLog.objects.values_list("metadata", flat=True))


def test_api_keys_and_pools_changed_on_their_pages_are_audited(seed, admin_client):
    admin_client.post(reverse("router:api-key-create"), {"name": "page-key"})
    admin_client.post(reverse("router:api-key-revoke", args=[ApiKey.objects.get().pk]))
    make_pool(name="echo")
    admin_client.post(reverse("autoscaling:pool-toggle", args=["echo"]))

    assert_audited(only_row("API_KEY_CREATE"), source="page", target=f"API key {ApiKey.objects.get()}",
                   changed={"name": (None, "page-key")})
    assert only_row("API_KEY_REVOKE").metadata["source"] == "page"
    toggled = ActionLog.objects.get(action_type="SCALE_DECISION", metadata__change="disabled")
    assert_audited(toggled, source="page", target="pool echo", changed={"enabled": (True, False)})


# --- The admin ------------------------------------------------------------------------------------------


def test_rows_changed_added_inline_and_deleted_in_the_admin_are_audited(seed, admin_client):
    region = Region.objects.get(code="pl-waw")
    data = {"provider": region.provider_id, "code": "pl-waw", "name": "Warszawa", "active": "on",
            "zones-TOTAL_FORMS": 1, "zones-INITIAL_FORMS": 0,
            "zones-0-code": "pl-waw-9", "zones-0-name": "Warsaw 9", "zones-0-active": "on"}
    model = LlmModel.objects.create(code="acme/gone", name="Gone", vram_required_gb=1, context_length=1024)

    assert admin_client.post(reverse("admin:catalog_region_change", args=[region.pk]), data).status_code == 302
    admin_client.post(reverse("admin:catalog_llmmodel_delete", args=[model.pk]), {"post": "yes"})

    assert_audited(only_row("CATALOG_UPDATE"), source="admin", target="region pl-waw",
                   changed={"name": ("Warsaw", "Warszawa")})
    assert_audited(only_row("CATALOG_CREATE"), source="admin", target="zone pl-waw-9",
                   changed={"code": (None, "pl-waw-9")})
    assert_audited(only_row("CATALOG_DELETE"), source="admin", target="LLM model acme/gone",
                   changed={"code": ("acme/gone", None)})


def test_an_api_key_and_a_pool_edited_in_the_admin_are_audited(seed, admin_client):
    api_key, _ = create_api_key(name="ci")
    pool = make_pool(name="echo")
    key_data = {"name": "ci-renamed", "allowed_models": "[]", "requests_per_minute": "", "tokens_per_minute": "",
                "revoked_at_0": "", "revoked_at_1": ""}
    settings = ("target_in_flight", "scale_up_window_s", "scale_down_window_s", "drain_timeout_s", "idle_period_s",
                "hold_timeout_s", "hold_queue_size")
    pool_data = {"model": pool.model_id, "enabled": "on", "scale_to_zero": "on", "min_size": 0, "max_size": 5,
                 **{field: getattr(pool, field) for field in settings}, "ttft_p95_objective_s": "",
                 "choices-TOTAL_FORMS": 0, "choices-INITIAL_FORMS": 0}
    for choice in pool.choices.all():
        index = pool_data["choices-TOTAL_FORMS"]
        pool_data.update({f"choices-{index}-id": choice.pk, f"choices-{index}-pool": pool.pk,
                          f"choices-{index}-position": choice.position,
                          f"choices-{index}-instance_type": choice.instance_type_id,
                          f"choices-{index}-zone": choice.zone_id})
        pool_data["choices-TOTAL_FORMS"] += 1
        pool_data["choices-INITIAL_FORMS"] += 1

    key_answer = admin_client.post(reverse("admin:router_apikey_change", args=[api_key.pk]), key_data)
    pool_answer = admin_client.post(reverse("admin:autoscaling_pool_change", args=[pool.pk]), pool_data)

    assert key_answer.status_code == 302, key_answer.content.decode()[-2000:]
    assert pool_answer.status_code == 302, pool_answer.content.decode()[-2000:]
    assert_audited(only_row("API_KEY_UPDATE"), source="admin", target="API key ci-renamed ({}…)".format(api_key.prefix),
                   changed={"name": ("ci", "ci-renamed")})
    assert_audited(ActionLog.objects.get(action_type="SCALE_DECISION", metadata__source="admin"), source="admin",
                   target="pool echo", changed={"max_size": (3, 5)})
    assert Pool.objects.get().max_size == 5
