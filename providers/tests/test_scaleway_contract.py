"""The fake Scaleway API against the real one, and the adapter's HTTP against the SDK's.

The SDK wheel ships recorded exchanges with the real API (scaleway/instance/v1/tests/cassettes). For every
endpoint the fake serves that a recording covers, the fake must answer with the same status and the same
JSON keys, recursively. Endpoints no recording covers (catalog, security groups, actions, volume lists,
Block Storage v1, which Inventiv uses: the recordings were made with v1alpha1) are held to the SDK's own
types instead: every key the fake sends is a field the SDK knows, every field the SDK requires is sent, and
the SDK's unmarshal function accepts the answer.
"""

import dataclasses
import re
from pathlib import Path

import pytest
import requests
import scaleway.instance.v1
import yaml
from scaleway.block.v1 import types as block_types
from scaleway.block.v1.marshalling import unmarshal_ListVolumesResponse as unmarshal_block_volumes
from scaleway.instance.v1 import types as instance_types
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway.instance.v1.marshalling import (
    unmarshal_CreateSecurityGroupResponse,
    unmarshal_GetServerTypesAvailabilityResponse,
    unmarshal_ListSecurityGroupRulesResponse,
    unmarshal_ListServersTypesResponse,
    unmarshal_ListVolumesResponse,
    unmarshal_ServerActionResponse,
    unmarshal_ServerIp,
)
from scaleway_core.client import Client

from providers.scaleway.client import InstanceAPI
from providers.testing.fake_scaleway import (  # noqa: F401 - fake_scaleway is a fixture
    TEST_ACCESS_KEY,
    TEST_PROJECT_ID,
    TEST_SECRET_KEY,
    fake_scaleway,
)

CASSETTES = Path(scaleway.instance.v1.__file__).parent / "tests" / "cassettes"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ZONE = "fr-par-1"
# The recorded routes the fake serves; the test fails if the recordings stop covering one of them.
SERVED = {
    ("POST", "/instance/v1/zones/{zone}/servers"),
    ("GET", "/instance/v1/zones/{zone}/servers"),
    ("GET", "/instance/v1/zones/{zone}/servers/{id}"),
    ("DELETE", "/instance/v1/zones/{zone}/servers/{id}"),
    ("GET", "/instance/v1/zones/{zone}/servers/{id}/user_data"),
    ("GET", "/instance/v1/zones/{zone}/servers/{id}/user_data/{key}"),
    ("PATCH", "/instance/v1/zones/{zone}/servers/{id}/user_data/{key}"),
    ("GET", "/block/v1alpha1/zones/{zone}/volumes/{id}"),
    ("DELETE", "/block/v1alpha1/zones/{zone}/volumes/{id}"),
}


def route_of(uri: str) -> str:
    path = re.sub(r"^https://api\.scaleway\.com", "", uri.split("?")[0])
    path = re.sub(r"/zones/[a-z]{2}-[a-z]{3}-[1-9]", "/zones/{zone}", path)
    path = re.sub(UUID, "{id}", path)
    return re.sub(r"/user_data/[^/]+$", "/user_data/{key}", path)


def recorded_exchanges() -> list[dict]:
    exchanges = []
    for cassette in sorted(CASSETTES.glob("*.cassette.yaml")):
        for interaction in yaml.safe_load(cassette.read_text())["interactions"]:
            request, response = interaction["request"], interaction["response"]
            route = (request["method"], route_of(request["uri"]))
            if route in SERVED:
                exchanges.append({"cassette": cassette.name, "route": route, "response": response})
    return exchanges


def key_differences(recorded, ours, where="$") -> list[str]:
    """Where `ours` has not the keys `recorded` has (recursively). A null on either side matches anything:
    the recording may hold null where the fake holds an object, or the other way round."""
    if recorded is None or ours is None:
        return []
    if isinstance(recorded, dict) != isinstance(ours, dict) or isinstance(recorded, list) != isinstance(ours, list):
        return [f"{where}: recorded {type(recorded).__name__}, fake {type(ours).__name__}"]
    if isinstance(recorded, list):
        # Every recorded item against every item of ours: lists mix shapes (servers with and without an image).
        return sorted({d for item in recorded for mine in ours for d in key_differences(item, mine, f"{where}[]")})
    if not isinstance(recorded, dict):
        return []
    if where.endswith(".volumes"):
        # Slots keyed "0", "1"...: compare the volumes of the same type, whatever their slot.
        by_type = {volume["volume_type"]: volume for volume in ours.values()}
        return [
            d
            for volume in recorded.values()
            if volume["volume_type"] in by_type
            for d in key_differences(volume, by_type[volume["volume_type"]], f"{where}.<{volume['volume_type']}>")
        ]
    differences = [f"{where}: the fake lacks {key!r}" for key in recorded.keys() - ours.keys()]
    differences += [f"{where}: the fake adds {key!r}" for key in ours.keys() - recorded.keys()]
    for key in recorded.keys() & ours.keys():
        differences += key_differences(recorded[key], ours[key], f"{where}.{key}")
    return differences


class FakeClient:
    """Plain HTTP to the fake, with the auth header the SDK sends."""

    def __init__(self, fake):
        self.fake = fake

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"x-auth-token": TEST_SECRET_KEY, **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.fake.url}{path}", headers=headers, timeout=5, **kwargs)

    def create_server(self, *, volume_type: str, image: str | None = "ubuntu_noble_gpu_os_12",
                      commercial_type: str = "RENDER-S") -> dict:
        body = {"project": TEST_PROJECT_ID, "commercial_type": commercial_type, "name": "contract",
                "dynamic_ip_required": True, "protected": False, "boot_type": "local",
                "volumes": {"0": {"volume_type": volume_type, "size": 20 * 10**9}}}
        if image:
            body["image"] = image
        return self("POST", f"/instance/v1/zones/{ZONE}/servers", json=body).json()["server"]


def fake_answer(fake, route: tuple[str, str]) -> requests.Response:
    """The fake's answer to `route`, on resources made for the occasion."""
    http = FakeClient(fake)
    base = f"/instance/v1/zones/{ZONE}"
    method, path = route
    if route == ("POST", "/instance/v1/zones/{zone}/servers"):
        return http("POST", f"{base}/servers", json={"project": TEST_PROJECT_ID, "commercial_type": "DEV1-S",
                                                     "name": "contract", "volumes": {}, "protected": False})
    if route == ("GET", "/instance/v1/zones/{zone}/servers"):
        http.create_server(volume_type="l_ssd")
        http.create_server(volume_type="sbs_volume")
        return http("GET", f"{base}/servers", params={"project": TEST_PROJECT_ID, "page": 1})
    if path.startswith("/block/"):
        server = http.create_server(volume_type="sbs_volume")
        volume_id = server["volumes"]["0"]["id"]
        if method == "DELETE":
            http("DELETE", f"{base}/servers/{server['id']}")  # detaches the volume
        return http(method, f"/block/v1alpha1/zones/{ZONE}/volumes/{volume_id}")
    server = http.create_server(volume_type="l_ssd")
    if path.endswith("/user_data/{key}"):
        if method == "GET":
            http("PATCH", f"{base}/servers/{server['id']}/user_data/first%20key", data=b"content",
                 headers={"Content-Type": "text/plain"})
        return http(method, f"{base}/servers/{server['id']}/user_data/first%20key", data=b"content",
                    headers={"Content-Type": "text/plain"})
    if path.endswith("/user_data"):
        http("PATCH", f"{base}/servers/{server['id']}/user_data/first%20key", data=b"content")
        return http("GET", f"{base}/servers/{server['id']}/user_data")
    return http(method, f"{base}/servers/{server['id']}")


def test_the_sdk_wheel_ships_recordings_of_every_route_the_fake_claims():
    assert {exchange["route"] for exchange in recorded_exchanges()} == SERVED


@pytest.mark.parametrize("exchange", recorded_exchanges(), ids=lambda e: f"{e['cassette']}:{' '.join(e['route'])}")
def test_the_fake_answers_like_the_recorded_api(fake_scaleway, exchange):
    recorded = exchange["response"]
    ours = fake_answer(fake_scaleway, exchange["route"])

    assert ours.status_code == recorded["status"]["code"]
    assert ("x-total-count" in ours.headers) == ("x-total-count" in recorded["headers"])
    recorded_body = recorded["body"]["string"]
    if not recorded_body:
        assert ours.content == b""
    elif recorded_body.lstrip().startswith(("{", "[")):
        assert key_differences(yaml.safe_load(recorded_body), ours.json()) == []
    else:  # a user data value comes back as it was stored, not as JSON
        assert ours.content == b"content"


# --- endpoints no recording covers: held to the SDK's types ------------------------------------


def sdk_differences(cls, data: dict) -> list[str]:
    fields = {f.name.rstrip("_"): f for f in dataclasses.fields(cls)}  # `type_` is sent as "type"
    required = {name for name, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    unknown = [f"{cls.__name__}: the SDK does not know {key!r}" for key in data.keys() - fields.keys()]
    return unknown + [f"{cls.__name__}: the fake leaves out {name!r}" for name in required - data.keys()]


def test_the_fake_catalog_matches_the_sdk_types(fake_scaleway):
    http = FakeClient(fake_scaleway)
    types = http("GET", "/instance/v1/zones/fr-par-2/products/servers", params={"per_page": 100}).json()
    availability = http("GET", "/instance/v1/zones/fr-par-2/products/servers/availability").json()

    unmarshal_ListServersTypesResponse(types)
    unmarshal_GetServerTypesAvailabilityResponse(availability)
    gpu_type = types["servers"]["L40S-1-48G"]
    differences = sdk_differences(instance_types.ServerType, gpu_type)
    differences += sdk_differences(instance_types.ServerTypeGPUInfo, gpu_type["gpu_info"])
    differences += sdk_differences(instance_types.ServerTypeNetwork, gpu_type["network"])
    differences += sdk_differences(instance_types.ServerTypeNetworkInterface, gpu_type["network"]["interfaces"][0])
    differences += sdk_differences(instance_types.ServerTypeCapabilities, gpu_type["capabilities"])
    differences += sdk_differences(instance_types.ServerTypeVolumeConstraintSizes, gpu_type["volumes_constraint"])
    differences += sdk_differences(
        instance_types.GetServerTypesAvailabilityResponseAvailability, availability["servers"]["L40S-1-48G"]
    )
    assert differences == []


def test_the_fake_security_groups_actions_and_volumes_match_the_sdk_types(fake_scaleway):
    http = FakeClient(fake_scaleway)
    base = f"/instance/v1/zones/{ZONE}"
    group = http("POST", f"{base}/security_groups", json={"name": "g", "description": "d", "stateful": True,
                                                          "project": TEST_PROJECT_ID}).json()
    rules = http("PUT", f"{base}/security_groups/{group['security_group']['id']}/rules", json={"rules": [
        {"action": "accept", "protocol": "tcp", "direction": "inbound", "ip_range": "0.0.0.0/0", "position": 1,
         "dest_port_from": 8000, "dest_port_to": 8000, "editable": True}]}).json()
    listed_rules = http("GET", f"{base}/security_groups/{group['security_group']['id']}/rules").json()
    server = http.create_server(volume_type="l_ssd")
    action = http("POST", f"{base}/servers/{server['id']}/action", json={"action": "poweron"}).json()
    running = http("GET", f"{base}/servers/{server['id']}").json()["server"]
    local_volumes = http("GET", f"{base}/volumes").json()
    block_server = http.create_server(volume_type="sbs_volume", commercial_type="DEV1-S")
    block_volumes = http("GET", f"/block/v1/zones/{ZONE}/volumes", params={"page_size": 10}).json()

    unmarshal_CreateSecurityGroupResponse(group)
    unmarshal_ListSecurityGroupRulesResponse(listed_rules)
    unmarshal_ServerActionResponse(action)
    unmarshal_ServerIp(running["public_ip"])
    unmarshal_ListVolumesResponse(local_volumes)
    unmarshal_block_volumes(block_volumes)
    assert block_server["volumes"]["0"]["volume_type"] == "sbs_volume"
    differences = sdk_differences(instance_types.SecurityGroup, group["security_group"])
    differences += sdk_differences(instance_types.SecurityGroupRule, rules["rules"][0])
    differences += sdk_differences(instance_types.Task, action["task"])
    differences += sdk_differences(instance_types.ServerIp, running["public_ip"])
    differences += sdk_differences(instance_types.Volume, local_volumes["volumes"][0])
    differences += sdk_differences(block_types.Volume, block_volumes["volumes"][0])
    differences += sdk_differences(block_types.Reference, block_volumes["volumes"][0]["references"][0])
    assert differences == []


# --- the adapter's requests --------------------------------------------------------------------


def test_the_adapter_sends_what_the_sdk_sends(fake_scaleway):
    """`_DeadlineMixin._request` rebuilds the SDK's request: both must put the same bytes on the wire."""
    client = Client(access_key=TEST_ACCESS_KEY, secret_key=TEST_SECRET_KEY, default_project_id=TEST_PROJECT_ID,
                    api_url=fake_scaleway.url)
    server_id = FakeClient(fake_scaleway).create_server(volume_type="l_ssd")["id"]
    seen = []
    for api in (InstanceUtilsV1API(client), InstanceAPI(client, timeout=(5, 5))):
        start = len(fake_scaleway.requests)
        api.list_servers(zone=ZONE, tags=["inventiv", "team=a"], page=2, per_page=5)
        api.set_server_user_data(server_id=server_id, zone=ZONE, key="cloud-init", content=b"#cloud-config\n")
        api.create_security_group(zone=ZONE, name="g", description="d", stateful=True, tags=["x", "y"])
        assert api.list_servers(zone=ZONE).total_count == "1"  # the x-total-count header, as the SDK exposes it
        seen.append([(r.method, r.path, r.query, r.body, r.headers) for r in fake_scaleway.requests[start:]])

    assert seen[0] == seen[1]
