"""The Mock cloud's console: faults armed and disarmed, servers listed and acted on, from the staff API and the
admin, each write audited; bad input is a 400 naming the field, and nothing changes."""

import pytest
from django.urls import reverse

from monitoring.models import ActionLog
from providers.base import INVENTIV_TAG, ServerSpec, ServerState, instance_tag
from providers.mock import MockProvider
from providers.models import MockFault, MockServer

pytestmark = pytest.mark.django_db

FAULTS = "/api/mock/faults/"
SERVERS = "/api/mock/servers/"
INSTANCE_ID = "11111111-1111-4111-8111-111111111111"


def make_server() -> MockServer:
    """A powered-on Mock server of the `none` runtime, its user data holding a recognisable "secret"."""
    cloud = MockProvider()
    info = cloud.create_server(ServerSpec(
        instance_id=INSTANCE_ID, zone="mock-eu-1", commercial_type="MOCK-GPU-S", name=f"inventiv-{INSTANCE_ID}",
        tags=[INVENTIV_TAG, instance_tag(INSTANCE_ID)], user_data="#cloud-config secret-user-data"))
    cloud.start_server(info.server_id, zone="mock-eu-1")
    return MockServer.objects.get(pk=info.server_id)


def audit_rows(action_type: str) -> list[ActionLog]:
    return list(ActionLog.objects.filter(action_type=action_type))


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_a_fault_armed_through_the_api_is_listed_audited_and_used_by_the_next_create(seed, api):
    answer = api.post(FAULTS, {"kind": "out_of_stock", "zone": "mock-eu-1", "remaining": 2}, format="json")

    assert answer.status_code == 201
    assert answer.json()["kind"] == "out_of_stock" and answer.json()["remaining"] == 2
    listed = api.get(FAULTS).json()
    assert [row["id"] for row in listed["results"]] == [answer.json()["id"]] and listed["count"] == 1
    (row,) = audit_rows("MOCK_FAULT_CREATE")
    assert row.metadata["source"] == "api" and row.metadata["changes"]["kind"]["after"] == "out_of_stock"
    with pytest.raises(Exception, match="out of stock"):
        make_server()
    assert MockFault.objects.get().remaining == 1


def test_a_fault_disarmed_through_the_api_is_gone_and_audited(seed, api):
    fault_id = api.post(FAULTS, {"kind": "slow_create", "delay_s": 2}, format="json").json()["id"]

    assert api.delete(f"{FAULTS}{fault_id}/").status_code == 204

    assert not MockFault.objects.exists()
    (row,) = audit_rows("MOCK_FAULT_DELETE")
    assert row.metadata["changes"]["delay_s"]["before"] == 2.0


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "meteor_strike"}, "kind"),
    ({"kind": "out_of_stock", "zone": "fr-par-2"}, "zone"),
    ({"kind": "out_of_stock", "commercial_type": "H100-1-80G"}, "commercial_type"),
    ({"kind": "create_fails", "remaining": 0}, "remaining"),
    ({"kind": "slow_create", "delay_s": -1}, "delay_s"),
    ({"kind": "slow_create", "delay_s": "soon"}, "delay_s"),
    ({"kind": "create_fails", "permanent": "perhaps"}, "permanent"),
    ({}, "kind"),
])
def test_a_bad_fault_is_a_400_naming_the_field_and_arms_nothing(seed, api, body, field):
    answer = api.post(FAULTS, body, format="json")

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid" and error["message"] and field in error["fields"]
    assert not MockFault.objects.exists() and not audit_rows("MOCK_FAULT_CREATE")


def test_the_mock_console_is_for_staff_only(seed, viewer_api, client):
    server = make_server()

    for url in (FAULTS, SERVERS, f"{SERVERS}{server.pk}/"):
        assert viewer_api.get(url).status_code == 403
        assert client.get(url).status_code in (401, 403)
    assert viewer_api.post(FAULTS, {"kind": "out_of_stock"}, format="json").status_code == 403
    assert viewer_api.post(f"{SERVERS}{server.pk}/delete/").status_code == 403
    assert not MockFault.objects.exists() and server.deleted_at is None


def test_servers_are_listed_with_their_state_and_without_their_secrets(seed, api):
    server = make_server()

    listed = api.get(SERVERS).json()

    (row,) = listed["results"]
    assert row["id"] == str(server.pk) and row["instance"] == INSTANCE_ID
    assert row["state"] == "running" and row["agent_running"] is None and row["runtime"] == "none"
    assert "secret-user-data" not in str(listed) and "user_data" not in row


def test_a_server_deleted_through_the_api_is_gone_audited_and_then_refused(seed, api):
    server = make_server()

    answer = api.post(f"{SERVERS}{server.pk}/delete/")

    assert answer.status_code == 200 and answer.json()["state"] == ServerState.GONE.value
    assert MockProvider().get_server(str(server.pk), zone="mock-eu-1") is None
    (row,) = audit_rows("MOCK_SERVER_DELETE")
    assert row.metadata["source"] == "api" and row.metadata["instance_id"] == INSTANCE_ID
    assert api.get(SERVERS).json()["count"] == 0
    assert api.get(f"{SERVERS}?include_deleted=true").json()["count"] == 1
    again = api.post(f"{SERVERS}{server.pk}/delete/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_status"
    assert len(audit_rows("MOCK_SERVER_DELETE")) == 1


def test_killing_the_agent_of_a_machine_that_runs_none_is_refused_and_changes_nothing(seed, api):
    server = make_server()

    answer = api.post(f"{SERVERS}{server.pk}/kill-agent/")

    assert answer.status_code == 409 and "runs no worker agent" in answer.json()["error"]["message"]
    assert api.post(f"{SERVERS}{server.pk}/crash-engine/").status_code == 409
    assert not audit_rows("MOCK_AGENT_KILL") and not audit_rows("MOCK_ENGINE_CRASH")


@pytest.mark.parametrize("server_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid",
                                       "------------------------------------"])
def test_an_unknown_server_is_a_404(seed, api, server_id):
    assert api.get(f"{SERVERS}{server_id}/").status_code == 404
    assert api.post(f"{SERVERS}{server_id}/kill-agent/").status_code == 404


# --- The admin ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mockfault", "mockserver", "providerlock"])
def test_every_mock_model_has_an_admin_list(seed, admin_client, model):
    make_server()

    assert admin_client.get(reverse(f"admin:providers_{model}_changelist")).status_code == 200


def test_a_fault_armed_changed_and_disarmed_in_the_admin_is_audited(seed, admin_client):
    data = {"kind": "quota_exceeded", "zone": "", "commercial_type": "MOCK-GPU-S", "remaining": "1",
            "permanent": "on", "delay_s": "0", "message": ""}
    assert admin_client.post(reverse("admin:providers_mockfault_add"), data).status_code == 302
    fault = MockFault.objects.get()
    admin_client.post(reverse("admin:providers_mockfault_change", args=[fault.pk]), {**data, "remaining": "3"})
    admin_client.post(reverse("admin:providers_mockfault_delete", args=[fault.pk]), {"post": "yes"})

    assert [row.metadata["source"] for row in audit_rows("MOCK_FAULT_CREATE")] == ["admin"]
    (changed,) = audit_rows("MOCK_FAULT_UPDATE")
    assert changed.metadata["changes"] == {"remaining": {"before": 1, "after": 3}}
    assert len(audit_rows("MOCK_FAULT_DELETE")) == 1 and not MockFault.objects.exists()


def test_a_bad_fault_in_the_admin_names_the_field_and_arms_nothing(seed, admin_client):
    data = {"kind": "out_of_stock", "zone": "nowhere-1", "commercial_type": "", "remaining": "1", "delay_s": "0"}

    response = admin_client.post(reverse("admin:providers_mockfault_add"), data)

    assert response.status_code == 200 and "is not a Mock zone" in response.content.decode()
    assert not MockFault.objects.exists()


def test_a_server_deleted_from_the_admin_action_is_gone_and_audited(seed, admin_client):
    server = make_server()

    admin_client.post(reverse("admin:providers_mockserver_changelist"),
                      {"action": "delete", "_selected_action": [str(server.pk)]})

    server.refresh_from_db()
    assert server.deleted_at is not None
    (row,) = audit_rows("MOCK_SERVER_DELETE")
    assert row.metadata["source"] == "admin"
    page = admin_client.get(reverse("admin:providers_mockserver_change", args=[server.pk])).content.decode()
    assert "secret-user-data" not in page


def test_a_body_that_is_not_json_is_a_400_in_the_one_error_shape(seed, api):
    answer = api.post(FAULTS, "\x00", content_type="application/json")

    assert answer.status_code == 400 and answer.json()["error"]["code"] == "parse_error"
    assert not MockFault.objects.exists()
