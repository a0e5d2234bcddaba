"""The Scaleway adapter, driven through the real SDK against the loopback fake of the Scaleway API."""

import logging
import socket
from dataclasses import replace

import pytest

from providers.base import (
    INVENTIV_TAG,
    ProviderError,
    ServerSpec,
    ServerState,
    TransientProviderError,
    instance_tag,
    server_name,
)
from providers.scaleway import ScalewayProvider
from providers.testing.fake_scaleway import (  # noqa: F401 - fake_scaleway is a fixture
    FALLBACK_DETAIL,
    HTML_BAD_GATEWAY,
    OUT_OF_STOCK,
    QUOTAS_EXCEEDED,
    TEST_ACCESS_KEY,
    TEST_PROJECT_ID,
    TEST_SECRET_KEY,
    fake_scaleway,
)

pytestmark = pytest.mark.django_db  # the security group is found or made under a row lock (providers/locks.py)

ZONE = "fr-par-2"
SERVER_ID = "7d4d7f4e-0000-4000-8000-000000000000"  # a server the fake does not know
GPU_PARAMS = {"image": "ubuntu_noble_gpu_os_13_nvidia", "boot_type": "local"}
SCW_VARIABLES = ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID", "SCW_API_URL", "SCW_ACCESS_KEY_FILE",
                 "SCW_SECRET_KEY_FILE")


def make_spec(instance_id="inst-1", *, zone=ZONE, commercial_type="L40S-1-48G", params=GPU_PARAMS,
              user_data="#cloud-config\n", root_volume=("sbs_volume", 125)):
    """A spec as instances hand it over, with the root volume a launch plan chose."""
    return ServerSpec(
        instance_id=instance_id,
        zone=zone,
        commercial_type=commercial_type,
        name=server_name(instance_id),
        tags=[INVENTIV_TAG, instance_tag(instance_id)],
        user_data=user_data,
        allocation_params=dict(params),
        root_volume_type=root_volume[0],
        root_volume_gb=root_volume[1],
    )


@pytest.fixture
def no_scaleway_env(monkeypatch):
    for name in SCW_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --- the lifecycle ----------------------------------------------------------------------------


def test_it_creates_starts_finds_and_terminates_a_server(fake_scaleway):
    provider = fake_scaleway.provider()

    created = provider.create_server(make_spec("inst-1", user_data="#cloud-config\nruncmd: []\n"))

    assert created.state == ServerState.STOPPED
    assert created.instance_id == "inst-1" and created.name == "inventiv-inst-1"
    assert fake_scaleway.user_data[created.server_id]["cloud-init"] == b"#cloud-config\nruncmd: []\n"
    sent = fake_scaleway.requests_to(r"/servers$", method="POST")[0].json()
    assert sent["commercial_type"] == "L40S-1-48G" and sent["image"] == "ubuntu_noble_gpu_os_13_nvidia"
    assert sent["dynamic_ip_required"] is True and sent["boot_type"] == "local"
    assert sent["project"] == TEST_PROJECT_ID
    assert sent["volumes"]["0"] == {"volume_type": "sbs_volume", "boot": False, "name": "inventiv-inst-1-root",
                                    "size": 125 * 10**9}

    provider.start_server(created.server_id, zone=ZONE)
    running = provider.get_server(created.server_id, zone=ZONE)
    assert running.state == ServerState.RUNNING
    assert running.public_ip == fake_scaleway.server(created.server_id)["public_ip"]["address"]
    assert running.created_at.utcoffset() is not None

    provider.terminate_server(created.server_id, zone=ZONE)
    assert provider.get_server(created.server_id, zone=ZONE) is None
    provider.delete_volumes(created.server_id, zone=ZONE)
    assert fake_scaleway.block_volumes == {}


def test_it_lists_servers_by_tag_across_pages(fake_scaleway):
    provider = fake_scaleway.provider(page_size=2)
    ids = {provider.create_server(make_spec(f"inst-{n}")).server_id for n in range(5)}
    other = fake_scaleway.provider().create_server(make_spec("inst-9", zone="pl-waw-2"))

    listed = provider.list_servers(zone=ZONE)
    one = provider.list_servers(zone=ZONE, tag=instance_tag("inst-3"))

    assert {server.server_id for server in listed} == ids
    assert other.server_id not in {server.server_id for server in listed}
    assert [server.instance_id for server in one] == ["inst-3"]
    pages = {r.query["page"][0] for r in fake_scaleway.requests_to(r"/zones/fr-par-2/servers$", method="GET")
             if r.query["tags"] == [INVENTIV_TAG]}
    assert pages == {"1", "2", "3"}  # three pages of servers: the last one is short, and no fourth is asked for


def test_it_returns_the_existing_server_when_created_twice_for_one_instance(fake_scaleway):
    first = fake_scaleway.provider().create_server(make_spec("inst-1"))
    # A retry after a crash: a new process, so nothing cached.
    again = fake_scaleway.provider().create_server(make_spec("inst-1"))

    assert again.server_id == first.server_id
    assert len(fake_scaleway.servers_tagged(instance_tag("inst-1"))) == 1
    assert len(fake_scaleway.requests_to(r"/servers$", method="POST")) == 1


def test_a_first_create_does_not_look_for_a_server_left_by_an_earlier_attempt(fake_scaleway):
    fake_scaleway.provider().create_server(replace(make_spec("inst-1"), may_exist=False))

    assert fake_scaleway.requests_to(r"/zones/fr-par-2/servers$", method="GET") == []
    assert len(fake_scaleway.requests_to(r"/servers$", method="POST")) == 1


def test_it_does_not_touch_the_user_data_of_a_server_that_already_booted(fake_scaleway):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1"))
    provider.start_server(created.server_id, zone=ZONE)

    provider.create_server(make_spec("inst-1", user_data="#cloud-config\nchanged: true\n"))

    assert fake_scaleway.user_data[created.server_id]["cloud-init"] == b"#cloud-config\n"


def test_it_starts_a_server_only_when_it_is_stopped(fake_scaleway):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1"))
    fake_scaleway.transition_s = 60  # the server stays "starting"

    provider.start_server(created.server_id, zone=ZONE)
    provider.start_server(created.server_id, zone=ZONE)

    assert provider.get_server(created.server_id, zone=ZONE).state == ServerState.STARTING
    assert len(fake_scaleway.requests_to(r"/action$")) == 1


def test_it_refuses_to_start_a_server_that_is_gone(fake_scaleway):
    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider().start_server(SERVER_ID, zone=ZONE)

    assert raised.value.permanent and raised.value.code == "PROVIDER_DELETED"


@pytest.mark.parametrize(
    ("scaleway_state", "state"),
    [
        ("running", ServerState.RUNNING),
        ("stopped", ServerState.STOPPED),
        ("stopped in place", ServerState.STOPPED),
        ("starting", ServerState.STARTING),
        ("stopping", ServerState.STOPPING),
        ("locked", ServerState.LOCKED),
    ],
)
def test_it_maps_scaleway_states(fake_scaleway, scaleway_state, state):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1"))
    fake_scaleway.servers[created.server_id]["state"] = scaleway_state

    assert provider.get_server(created.server_id, zone=ZONE).state == state


def test_it_deletes_a_stopped_server_and_then_its_local_volumes(fake_scaleway):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1", zone="fr-par-1", commercial_type="RENDER-S",
                                               root_volume=("l_ssd", 125)))
    [volume_id] = fake_scaleway.local_volumes

    provider.terminate_server(created.server_id, zone="fr-par-1")
    provider.terminate_server(created.server_id, zone="fr-par-1")  # already gone: fine

    assert provider.get_server(created.server_id, zone="fr-par-1") is None
    assert fake_scaleway.local_volumes[volume_id]["server"] is None  # a delete leaves local volumes behind
    provider.delete_volumes(created.server_id, zone="fr-par-1")
    assert fake_scaleway.local_volumes == {}


def test_it_powers_off_a_server_that_cannot_be_terminated_yet_then_deletes_it(fake_scaleway):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1"))
    fake_scaleway.servers[created.server_id].update(state="stopped in place", allowed_actions=["poweron", "poweroff"])

    provider.terminate_server(created.server_id, zone=ZONE)
    assert provider.get_server(created.server_id, zone=ZONE).state == ServerState.STOPPED
    provider.terminate_server(created.server_id, zone=ZONE)

    assert provider.get_server(created.server_id, zone=ZONE) is None
    actions = [r.json()["action"] for r in fake_scaleway.requests_to(r"/action$")]
    assert actions == ["poweroff"]


def test_it_asks_again_later_to_terminate_a_server_in_a_transient_state(fake_scaleway):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1"))
    fake_scaleway.transition_s = 60
    provider.start_server(created.server_id, zone=ZONE)

    with pytest.raises(ProviderError) as raised:
        provider.terminate_server(created.server_id, zone=ZONE)

    assert not raised.value.permanent
    assert "starting" in raised.value.message


def test_it_keeps_volumes_still_attached_and_tolerates_none(fake_scaleway):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1"))

    with pytest.raises(ProviderError) as raised:
        provider.delete_volumes(created.server_id, zone=ZONE)
    provider.delete_volumes("3f0cbd2e-0000-4000-8000-000000000000", zone=ZONE)

    assert not raised.value.permanent
    assert len(fake_scaleway.block_volumes) == 1


# --- the catalog ------------------------------------------------------------------------------


def test_it_fetches_gpu_types_with_prices_and_availability(fake_scaleway):
    fake_scaleway.set_availability("pl-waw-2", "L40S-1-48G", "scarce")
    fake_scaleway.set_price("L40S-1-48G", 1.3999)

    fetched = fake_scaleway.provider(page_size=5).fetch_catalog(zones=["fr-par-2", "pl-waw-2"])

    offers = {offer.code: offer for offer in fetched}

    l40s = offers["L40S-1-48G"]
    assert (l40s.gpu_count, l40s.vram_per_gpu_gb, l40s.vcpu, l40s.ram_gb) == (1, 48, 8, 96)
    assert l40s.hourly_price == pytest.approx(1.3999) and l40s.gpu_model == "L40S"
    assert l40s.availability == {"fr-par-2": "available", "pl-waw-2": "scarce"}
    assert offers["H100-SXM-8-80G"].availability == {"fr-par-2": "available"}
    assert l40s.root_volumes == {"sbs_volume": [5, 10_000]}  # volumes_constraint 0/0: no local volume
    render = fake_scaleway.provider().fetch_catalog(zones=["fr-par-1"])
    assert {o.code: o.root_volumes for o in render}["RENDER-S"] == {"sbs_volume": [5, 10_000], "l_ssd": [1, 400]}
    assert (offers["B300-SXM-8-288G"].gpu_count, offers["B300-SXM-8-288G"].vram_per_gpu_gb) == (8, 288)
    assert "DEV1-S" not in offers and "RENDER-S" not in offers  # a CPU type; a type sold in fr-par-1 only
    assert len(fake_scaleway.requests_to(r"/zones/fr-par-2/products/servers$")) > 1  # several pages


# --- errors -----------------------------------------------------------------------------------


EVERY_CALL = {
    "check_available": lambda p: p.check_available(),
    "create_server": lambda p: p.create_server(make_spec()),
    "start_server": lambda p: p.start_server(SERVER_ID, zone=ZONE),
    "get_server": lambda p: p.get_server(SERVER_ID, zone=ZONE),
    "list_servers": lambda p: p.list_servers(zone=ZONE),
    "terminate_server": lambda p: p.terminate_server(SERVER_ID, zone=ZONE),
    "delete_volumes": lambda p: p.delete_volumes(SERVER_ID, zone=ZONE),
    "fetch_catalog": lambda p: p.fetch_catalog(zones=[ZONE]),
}


@pytest.mark.parametrize("call", EVERY_CALL.values(), ids=EVERY_CALL.keys())
def test_it_reports_missing_credentials_without_crashing(no_scaleway_env, call):
    provider = ScalewayProvider()

    with pytest.raises(ProviderError) as raised:
        call(provider)

    assert raised.value.permanent and raised.value.code == "MISSING_PROVIDER_CREDENTIALS"
    assert "SCW_ACCESS_KEY is not set" in raised.value.message
    assert "SCW_SECRET_KEY is not set" in raised.value.message
    assert "SCW_DEFAULT_PROJECT_ID is not set" in raised.value.message


def test_it_reads_credentials_from_the_environment_and_files(fake_scaleway, no_scaleway_env, monkeypatch, tmp_path):
    (tmp_path / "access").write_text(TEST_ACCESS_KEY + "\n")
    (tmp_path / "secret").write_text(TEST_SECRET_KEY + "\n")
    monkeypatch.setenv("SCW_ACCESS_KEY_FILE", str(tmp_path / "access"))
    monkeypatch.setenv("SCW_SECRET_KEY_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("SCW_DEFAULT_PROJECT_ID", TEST_PROJECT_ID)
    monkeypatch.setenv("SCW_API_URL", fake_scaleway.url + "/")

    provider = ScalewayProvider()

    provider.check_available()
    assert provider.list_servers(zone=ZONE) == []


def test_it_names_an_unreadable_secret_file(no_scaleway_env, monkeypatch, tmp_path):
    monkeypatch.setenv("SCW_SECRET_KEY_FILE", str(tmp_path / "missing"))

    with pytest.raises(ProviderError) as raised:
        ScalewayProvider(access_key=TEST_ACCESS_KEY, project_id=TEST_PROJECT_ID).check_available()

    assert "SCW_SECRET_KEY_FILE names a file that cannot be read" in raised.value.message


def test_it_never_shows_the_secret_key(fake_scaleway, caplog):
    malformed_secret = "my-very-secret-password"
    misconfigured = ScalewayProvider(
        access_key=TEST_ACCESS_KEY, secret_key=malformed_secret, project_id=TEST_PROJECT_ID
    )
    provider = fake_scaleway.provider()
    fake_scaleway.fail_next(r"/servers$", status=500, body={"type": "internal", "message": "boom"})

    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ProviderError) as misconfigured_error:
            misconfigured.check_available()
        with pytest.raises(ProviderError) as call_error:
            provider.list_servers(zone=ZONE)
        provider.list_servers(zone=ZONE)

    assert "SCW_SECRET_KEY is not a Scaleway secret key" in misconfigured_error.value.message
    shown = [repr(provider), repr(misconfigured), misconfigured_error.value.message, call_error.value.message,
             caplog.text]
    assert "Scaleway SDK REQUEST" in caplog.text  # the SDK's debug log ran, with the token masked
    for text in shown:
        assert TEST_SECRET_KEY not in text and malformed_secret not in text


@pytest.mark.parametrize("path", [r"/servers$", r"/action$"])
def test_it_reports_out_of_stock_as_permanent(fake_scaleway, path):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-0"))
    fake_scaleway.fail_next(path, method="POST", status=503, body=OUT_OF_STOCK)

    with pytest.raises(ProviderError) as raised:
        if path == r"/servers$":
            provider.create_server(make_spec("inst-1"))
        else:
            provider.start_server(created.server_id, zone=ZONE)

    assert raised.value.permanent and raised.value.code == "PROVIDER_OUT_OF_STOCK"


def test_it_reports_an_exceeded_quota_as_permanent(fake_scaleway):
    fake_scaleway.fail_next(r"/servers$", method="POST", status=403, body=QUOTAS_EXCEEDED)

    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider().create_server(make_spec("inst-1"))

    assert raised.value.permanent and raised.value.code == "PROVIDER_QUOTA_EXCEEDED"
    assert "instance_gpu_l40s (1/1)" in raised.value.message


def test_it_reports_a_gateway_html_page_as_transient(fake_scaleway):
    fake_scaleway.fail_next(r"/servers/", status=502, body=HTML_BAD_GATEWAY, content_type="text/html")

    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider().get_server(SERVER_ID, zone=ZONE)

    assert not raised.value.permanent and raised.value.code is None


def test_it_gives_up_on_a_hung_call_within_its_deadline(fake_scaleway):
    fake_scaleway.hang_next(r"/servers/", 10)
    provider = fake_scaleway.provider(call_timeout_s=0.5)

    with pytest.raises(ProviderError) as raised:
        provider.get_server(SERVER_ID, zone=ZONE)

    # requests raises Timeout only when a deadline passes: the call did not wait for the hung answer.
    assert not raised.value.permanent and "timed out after 0.5s" in raised.value.message


def test_it_reports_an_unreachable_api_as_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = ScalewayProvider(access_key=TEST_ACCESS_KEY, secret_key=TEST_SECRET_KEY, project_id=TEST_PROJECT_ID,
                                api_url=f"http://127.0.0.1:{closed_port}")

    with pytest.raises(ProviderError) as raised:
        provider.list_servers(zone=ZONE)

    assert not raised.value.permanent and "could not reach" in raised.value.message


@pytest.mark.parametrize(
    ("status", "body", "permanent"),
    [
        (500, {"type": "internal_error", "message": "internal error"}, False),
        (429, {"type": "too_many_requests", "help_message": "slow down"}, False),
        (409, {"type": "transient_state", "resource": "instance_server", "current_state": "starting"}, False),
        (400, {"type": "invalid_request_error", "message": "commercial type unknown"}, True),
        (400, {"type": "invalid_request_error", "message": "Validation Error", "fields": {"name": ["required"]}}, True),
        (401, {"type": "denied_authentication", "method": "api_key", "reason": "not_found"}, True),
    ],
)
def test_it_says_whether_a_retry_can_help(fake_scaleway, status, body, permanent):
    fake_scaleway.fail_next(r"/servers$", method="POST", status=status, body=body)

    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider().create_server(make_spec("inst-1"))

    assert raised.value.permanent is permanent and raised.value.code is None
    assert f"HTTP {status}" in raised.value.message


def test_it_refuses_a_type_without_an_image(fake_scaleway):
    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider().create_server(make_spec("inst-1", params={"boot_type": "local"}))

    assert raised.value.permanent and raised.value.code == "MISSING_PARAMS"
    assert fake_scaleway.servers == {}


# --- what Scaleway refuses ----------------------------------------------------------------------


def test_a_local_root_volume_on_a_block_only_gpu_type_is_refused_with_scaleways_reason(fake_scaleway):
    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider().create_server(make_spec("inst-1", commercial_type="H100-1-80G",
                                                         root_volume=("l_ssd", 125)))

    assert raised.value.permanent
    assert "The size of a local volume of H100-1-80G instances must be between 0GB and 0GB" in raised.value.message
    assert fake_scaleway.servers == {}


def test_scaleways_details_travel_with_the_error(fake_scaleway):
    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider().create_server(make_spec("inst-1", root_volume=("sbs_volume", 20_000)))

    assert raised.value.details == [{"argument_name": "volumes.0.size", "reason": "constraint",
                                     "help_message": "size must be between 5000000000 and 10000000000000"}]


def test_a_throttled_call_says_how_long_to_wait(fake_scaleway):
    fake_scaleway.throttle_next(r"/servers/", retry_after_s=17)

    with pytest.raises(TransientProviderError) as raised:
        fake_scaleway.provider().get_server(SERVER_ID, zone=ZONE)

    assert raised.value.retry_after == 17


def test_a_server_that_falls_back_to_stopped_after_its_power_on_says_so(fake_scaleway):
    provider = fake_scaleway.provider()
    created = provider.create_server(make_spec("inst-1"))
    fake_scaleway.fall_back_after_power_on()

    provider.start_server(created.server_id, zone=ZONE)
    fallen = provider.get_server(created.server_id, zone=ZONE)

    assert fallen.state == ServerState.STOPPED and fallen.metadata["state_detail"] == FALLBACK_DETAIL
    provider.start_server(created.server_id, zone=ZONE)  # the next power-on holds
    assert provider.get_server(created.server_id, zone=ZONE).state == ServerState.RUNNING
