"""The `inventiv-workers` security group every worker server joins: inbound traffic only on the engine and
agent ports. Found or created once per zone and process."""

from __future__ import annotations

from collections.abc import Iterable

from scaleway.instance.v1 import (
    SecurityGroupPolicy,
    SecurityGroupRuleAction,
    SecurityGroupRuleDirection,
    SecurityGroupRuleProtocol,
    SetSecurityGroupRulesRequestRule,
)

from providers.base import INVENTIV_TAG
from providers.scaleway.client import ScalewayClient

DEFAULT_WORKER_PORTS = (8000, 8081)  # vLLM, worker agent
SECURITY_GROUP_NAME = "inventiv-workers"
ANY_ADDRESS = ("0.0.0.0/0", "::/0")  # IPv4 and IPv6


class WorkerSecurityGroups:
    def __init__(self, client: ScalewayClient, *, name: str, worker_ports: Iterable[int]):
        self.client = client
        self.name = name
        self.worker_ports = tuple(worker_ports)
        self._ids: dict[str, str] = {}  # zone -> id

    def id_in(self, zone: str) -> str:
        """The zone's group, created the first time, its rules set again when a crash left them missing."""
        if zone in self._ids:
            return self._ids[zone]
        client = self.client
        groups = client.call(
            "list security groups",
            client.instance.list_security_groups_all,
            zone=zone,
            name=self.name,
            project=client.project_id,
            per_page=client.page_size,
        )
        group = next((group for group in groups if group.name == self.name), None)
        if group is None:
            group = client.call(
                "create security group",
                client.instance.create_security_group,
                zone=zone,
                name=self.name,
                description="Inventiv GPU workers: inbound traffic only on the engine and agent ports",
                stateful=True,
                inbound_default_policy=SecurityGroupPolicy.DROP,
                outbound_default_policy=SecurityGroupPolicy.ACCEPT,
                project=client.project_id,
                tags=[INVENTIV_TAG],
            ).security_group
            rules_missing = True
        else:
            rules = client.call(
                "list security group rules",
                client.instance.list_security_group_rules_all,
                security_group_id=group.id,
                zone=zone,
                per_page=client.page_size,
            )
            # A crash between creating the group and setting its rules leaves a group that drops everything.
            rules_missing = not set(self.worker_ports) <= _open_inbound_tcp_ports(rules)
        if rules_missing:
            client.call(
                "set security group rules",
                client.instance.set_security_group_rules,
                security_group_id=group.id,
                zone=zone,
                rules=self._rules(),
            )
        self._ids[zone] = group.id
        return group.id

    def _rules(self) -> list[SetSecurityGroupRulesRequestRule]:
        openings = [(port, ip_range) for port in self.worker_ports for ip_range in ANY_ADDRESS]
        return [
            SetSecurityGroupRulesRequestRule(
                action=SecurityGroupRuleAction.ACCEPT,
                protocol=SecurityGroupRuleProtocol.TCP,
                direction=SecurityGroupRuleDirection.INBOUND,
                ip_range=ip_range,
                position=position,
                dest_port_from=port,
                dest_port_to=port,
                editable=True,
            )
            for position, (port, ip_range) in enumerate(openings, start=1)
        ]


def _open_inbound_tcp_ports(rules) -> set[int]:
    ports: set[int] = set()
    for rule in rules:
        if (str(rule.direction), str(rule.action), str(rule.protocol)) != ("inbound", "accept", "tcp"):
            continue
        if rule.dest_port_from:
            ports.update(range(rule.dest_port_from, (rule.dest_port_to or rule.dest_port_from) + 1))
    return ports
