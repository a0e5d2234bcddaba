"""The `inventiv-workers` security group every worker server joins: inbound traffic dropped, except the engine
and agent ports from the control plane's addresses (and SSH from the operator's, when asked for).

vLLM's API key guards only its `/v1` paths: `/invocations`, `/tokenize`, `/metrics`... answer anyone who
reaches the port, so the ports admit `INVENTIV_CONTROL_PLANE_CIDRS` only (README, "Providers").

One group per zone, whatever the concurrency: the group is found by its tag (the oldest one when a race of
an earlier version left several) or created, under a row lock of ours, so eight provisions at once in a
zone make one group. Rules are only ever added: a rule Inventiv needs and does not find is created, and no
rule is rewritten or removed, so the rules an operator added or tightened stay as they are. Rules are
compared as Scaleway returns them (protocol "TCP" in upper case, networks in any spelling).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from scaleway.instance.v1 import SecurityGroupPolicy, SecurityGroupRuleAction, SecurityGroupRuleDirection

from providers.base import INVENTIV_TAG, ProviderError
from providers.locks import provider_lock
from providers.scaleway.client import ScalewayClient

log = logging.getLogger(__name__)

DEFAULT_WORKER_PORTS = (8000, 8081)  # vLLM, worker agent
SSH_PORT = 22
SECURITY_GROUP_NAME = "inventiv-workers"
GROUP_TAG = "inventiv-role=workers"  # how Inventiv finds its group, whatever an operator renames it to
ANY_ADDRESS = ("0.0.0.0/0", "::/0")  # IPv4 and IPv6
TCP = "TCP"  # as Scaleway writes it (the SDK's enum says "tcp"; the API answers "TCP")
MISSING_CIDRS = "MISSING_CONTROL_PLANE_CIDRS"


@dataclass(frozen=True)
class Ingress:
    """Who may reach a worker: the engine and agent ports from the control plane, SSH from the operator."""

    worker_ports: tuple[int, ...] = DEFAULT_WORKER_PORTS
    control_plane_cidrs: tuple[str, ...] = ()
    allow_public: bool = False
    ssh_cidrs: tuple[str, ...] = ()

    def check(self) -> None:
        """Refuse to open workers to nobody-knows-whom: a ProviderError with MISSING_CONTROL_PLANE_CIDRS."""
        if not self.control_plane_cidrs and not self.allow_public:
            raise ProviderError(
                "INVENTIV_CONTROL_PLANE_CIDRS is not set: the engine and agent ports of a Scaleway machine "
                "would have no allowed source. Set it to the control plane's egress addresses (or set "
                "INVENTIV_ALLOW_PUBLIC_ENGINES=1 to open them to the internet on purpose).",
                code=MISSING_CIDRS,
            )

    def openings(self) -> list[tuple[int, str]]:
        """(port, network) pairs to admit, in order."""
        sources = ANY_ADDRESS if self.allow_public else self.control_plane_cidrs
        pairs = [(port, cidr) for port in self.worker_ports for cidr in sources]
        return pairs + [(SSH_PORT, cidr) for cidr in self.ssh_cidrs]


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text


def _key(direction, action, protocol, ip_range, port_from, port_to) -> tuple:
    """A rule as a comparable value, whatever the case and spelling Scaleway returns it in."""
    return (str(direction).lower(), str(action).lower(), str(protocol).upper(), _network(str(ip_range)),
            port_from, port_to or port_from)


class WorkerSecurityGroups:
    def __init__(self, client: ScalewayClient, *, name: str, ingress: Ingress):
        self.client = client
        self.name = name
        self.ingress = ingress
        self._ids: dict[str, str] = {}  # zone -> id, for the life of the process

    def id_in(self, zone: str) -> str:
        """The zone's worker group with the rules Inventiv needs, found or created once per process."""
        self.ingress.check()
        if zone in self._ids:
            return self._ids[zone]
        with provider_lock(f"scaleway:security-group:{self.client.project_id}:{zone}:{self.name}") as lock:
            group_id = self._find(zone) or self._create(zone)
            self._add_missing_rules(zone, group_id)
            lock.value = group_id
        self._ids[zone] = group_id
        return group_id

    def _find(self, zone: str) -> str | None:
        client = self.client
        groups = client.all_pages(
            "list security groups", client.instance.list_security_groups, "security_groups",
            zone=zone, tags=[GROUP_TAG], project=client.project_id,
        )
        groups = [group for group in groups if GROUP_TAG in (group.tags or [])]
        if not groups:
            return None
        groups.sort(key=lambda group: group.creation_date.timestamp() if group.creation_date else 0)
        if len(groups) > 1:
            # An earlier version raced itself into several; the oldest is the one its servers joined first.
            log.warning("%d worker security groups in %s: the oldest, %s, is used", len(groups), zone, groups[0].id)
        return groups[0].id

    def _create(self, zone: str) -> str:
        client = self.client
        return client.call(
            "create security group",
            client.instance.create_security_group,
            zone=zone,
            name=self.name,
            description="Inventiv GPU workers: engine and agent ports open to the control plane only",
            stateful=True,
            inbound_default_policy=SecurityGroupPolicy.DROP,
            outbound_default_policy=SecurityGroupPolicy.ACCEPT,
            project=client.project_id,
            tags=[INVENTIV_TAG, GROUP_TAG],
        ).security_group.id

    def _add_missing_rules(self, zone: str, group_id: str) -> None:
        client = self.client
        rules = client.all_pages(
            "list security group rules", client.instance.list_security_group_rules, "rules",
            security_group_id=group_id, zone=zone,
        )
        present = {_key(r.direction, r.action, r.protocol, r.ip_range, r.dest_port_from, r.dest_port_to)
                   for r in rules}
        position = max((rule.position or 0 for rule in rules), default=0)
        for port, cidr in self.ingress.openings():
            if _key("inbound", "accept", TCP, cidr, port, port) in present:
                continue
            position += 1
            client.call(
                "create security group rule",
                client.instance.create_security_group_rule,
                security_group_id=group_id,
                zone=zone,
                protocol=TCP,
                direction=SecurityGroupRuleDirection.INBOUND,
                action=SecurityGroupRuleAction.ACCEPT,
                ip_range=cidr,
                position=position,
                editable=True,
                dest_port_from=port,
                dest_port_to=port,
            )
