"""The workers' security group: the engine and agent ports open to the control plane only, one group per zone
whatever the concurrency, and rules only ever added (README, "Providers")."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from providers.base import ProviderError
from providers.scaleway.security_groups import GROUP_TAG, SECURITY_GROUP_NAME
from providers.testing.fake_scaleway import (  # noqa: F401 - fake_scaleway is a fixture
    TEST_CONTROL_PLANE_CIDR,
    TEST_PROJECT_ID,
    fake_scaleway,
)
from providers.tests.test_scaleway import ZONE, make_spec

pytestmark = pytest.mark.django_db
OPERATOR_RULE = {"protocol": "TCP", "direction": "inbound", "action": "accept", "ip_range": "198.51.100.7/32",
                 "dest_port_from": 9090, "dest_port_to": 9090, "position": 1}


def worker_groups(fake) -> list[dict]:
    return [group for group in fake.security_groups.values() if GROUP_TAG in group["tags"]]


def openings(fake, group: dict) -> set[tuple]:
    return {(r["direction"], r["action"], r["protocol"], r["ip_range"], r["dest_port_from"])
            for r in fake.rules[group["id"]]}


def test_the_engine_and_agent_ports_admit_only_the_control_plane(fake_scaleway):
    server = fake_scaleway.provider().create_server(make_spec("inst-1"))

    [group] = worker_groups(fake_scaleway)
    assert group["name"] == SECURITY_GROUP_NAME and group["inbound_default_policy"] == "drop"
    assert openings(fake_scaleway, group) == {
        ("inbound", "accept", "TCP", TEST_CONTROL_PLANE_CIDR, 8000),
        ("inbound", "accept", "TCP", TEST_CONTROL_PLANE_CIDR, 8081),
    }
    assert fake_scaleway.server(server.server_id)["security_group"]["id"] == group["id"]


def test_a_create_without_control_plane_ranges_is_refused_with_its_code(fake_scaleway):
    with pytest.raises(ProviderError) as raised:
        fake_scaleway.provider(control_plane_cidrs=()).create_server(make_spec("inst-1"))

    assert raised.value.permanent and raised.value.code == "MISSING_CONTROL_PLANE_CIDRS"
    assert "INVENTIV_CONTROL_PLANE_CIDRS" in raised.value.message
    assert fake_scaleway.servers == {} and fake_scaleway.security_groups == {}


def test_public_engines_are_opened_only_on_purpose_and_ssh_only_from_the_operator(fake_scaleway):
    provider = fake_scaleway.provider(control_plane_cidrs=(), allow_public_engines=True, ssh_cidrs=("192.0.2.0/28",))

    provider.create_server(make_spec("inst-1"))

    [group] = worker_groups(fake_scaleway)
    assert {(r["ip_range"], r["dest_port_from"]) for r in fake_scaleway.rules[group["id"]]} == {
        ("0.0.0.0/0", 8000), ("::/0", 8000), ("0.0.0.0/0", 8081), ("::/0", 8081), ("192.0.2.0/28", 22),
    }


def test_later_provisions_rewrite_nothing_and_leave_the_operators_rules_alone(fake_scaleway):
    fake_scaleway.provider().create_server(make_spec("inst-1"))
    [group] = worker_groups(fake_scaleway)
    fake_scaleway.rules[group["id"]].append(fake_scaleway._rule({**OPERATOR_RULE, "position": 9}, zone=ZONE))
    before = [dict(rule) for rule in fake_scaleway.rules[group["id"]]]
    rule_writes = len(fake_scaleway.requests_to(r"/rules$", method="POST"))

    # Other processes (nothing cached), as Scaleway returns the rules: protocol "TCP".
    fake_scaleway.provider().create_server(make_spec("inst-2"))
    fake_scaleway.provider().create_server(make_spec("inst-3"))

    assert fake_scaleway.rules[group["id"]] == before
    assert len(fake_scaleway.requests_to(r"/rules$", method="POST")) == rule_writes
    assert fake_scaleway.requests_to(r"/rules$", method="PUT") == []


def test_a_group_left_without_its_rules_gets_the_missing_ones_only(fake_scaleway):
    # A crash between creating the group and adding its rules; an operator added a rule of their own meanwhile.
    group = fake_scaleway._new_security_group(ZONE, name="renamed-by-an-operator", project=TEST_PROJECT_ID,
                                              inbound_default_policy="drop", tags=["inventiv", GROUP_TAG])
    fake_scaleway.rules[group["id"]].append(fake_scaleway._rule(OPERATOR_RULE, zone=ZONE))

    fake_scaleway.provider(worker_ports=(9000,)).create_server(make_spec("inst-1"))

    assert len(worker_groups(fake_scaleway)) == 1
    assert openings(fake_scaleway, group) == {
        ("inbound", "accept", "TCP", "198.51.100.7/32", 9090),
        ("inbound", "accept", "TCP", TEST_CONTROL_PLANE_CIDR, 9000),
    }


def test_the_oldest_of_several_groups_is_adopted(fake_scaleway):
    groups = [fake_scaleway._new_security_group(ZONE, name=SECURITY_GROUP_NAME, project=TEST_PROJECT_ID,
                                                tags=["inventiv", GROUP_TAG]) for _ in range(3)]
    oldest = groups[1]
    for age, group in zip((1, 5, 3), groups, strict=True):
        group["creation_date"] = (datetime.now(UTC) - timedelta(days=age)).isoformat()

    server = fake_scaleway.provider().create_server(make_spec("inst-1"))

    assert fake_scaleway.server(server.server_id)["security_group"]["id"] == oldest["id"]


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_provisions_in_one_zone_make_one_group_whose_rules_stay(fake_scaleway):
    errors, start = [], threading.Barrier(8)

    def provision(n: int) -> None:
        try:
            start.wait()
            fake_scaleway.provider().create_server(make_spec(f"inst-{n}"))  # a process each: nothing cached
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=provision, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    [group] = worker_groups(fake_scaleway)
    assert len(fake_scaleway.requests_to(r"/security_groups$", method="POST")) == 1
    assert len(fake_scaleway.requests_to(r"/rules$", method="POST")) == 2  # engine and agent port, once each
    assert {server["security_group"]["id"] for server in fake_scaleway.servers.values()} == {group["id"]}
