"""Hosts the operator runs: registering a GPU machine Inventiv does not rent (README, "A GPU machine you
run yourself").

A registration names the machine's address, its GPU type (a catalog type), a zone label, the hourly price
the operator counts for it and, optionally, the model it will serve. It makes the static provider's
catalog rows where missing (catalog/hosts.py), stores an Instance of the static provider at that price and
a one-time join token (only its hash: `JoinToken`), both audited, and attaches the machine through the
normal provisioning path at once (the static adapter calls no cloud), so the instance waits in
`installing` for its agent. The agent exchanges the token for a worker token of its own
(instances/joining.py); from then on the host is an instance like any other: ready by heartbeat, routed,
drained, terminated (which detaches it: providers/static.py) and costed at the operator's price.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.hosts import PlacementInvalid, check_placement, static_placement
from catalog.models import LlmModel
from catalog.services import launch_plan
from instances.credentials import hash_token
from instances.models import Instance, JoinToken
from instances.provisioning import provision_instance
from instances.status import Status
from monitoring.audit import Masked, record_change, snapshot
from monitoring.services import Component, record_action

log = logging.getLogger(__name__)

JOIN_TOKEN_PREFIX = "inv-join-"
MAX_PRICE = Decimal("999999")
HOST_REGISTER = "HOST_REGISTER"


class HostInvalid(Exception):
    """The registration cannot be accepted: {field: reason}. Nothing was stored."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in fields.items()))
        self.fields = fields


@dataclass(frozen=True, repr=False)
class RegisteredHost:
    instance: Instance
    join_token: str  # in clear: shown once, never stored
    expires_at: datetime
    plan_fits: bool | None  # whether the launch planner finds a plan for the model (None: no model named)
    plan_reason: str

    def __repr__(self) -> str:
        return f"RegisteredHost({self.instance.pk})"


@dataclass(frozen=True)
class HostFields:
    address: str
    instance_type: str
    zone: str
    hourly_price: Decimal
    model: LlmModel | None


def clean_host(*, address, instance_type, zone, hourly_price, model=None) -> HostFields:
    """The registration's fields checked against the catalog; raises HostInvalid naming each bad one."""
    errors: dict[str, str] = {}
    given = {"address": address, "instance_type": instance_type, "zone": zone, "hourly_price": hourly_price,
             "model": model}
    unreadable = {name: "must not contain NUL characters" for name, value in given.items() if "\x00" in str(value or "")}
    if unreadable:
        raise HostInvalid(unreadable)
    address, type_code, label = (str(value or "").strip() for value in (address, instance_type, zone))
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        errors["address"] = "give the machine's IP address (the router connects to vLLM there)"
    price = _price(hourly_price)
    if price is None:
        errors["hourly_price"] = f"give a price per hour between 0 and {MAX_PRICE}, at most 4 decimals"
    if not type_code:
        errors["instance_type"] = "give the code of a GPU instance type in the catalog (L4-1-24G...)"
    if not label:
        errors["zone"] = "give a zone label (where the machine is: home-lab, dc-paris...)"
    if type_code and label:
        errors.update(check_placement(type_code=type_code, zone_label=label))
    llm = None
    model_code = str(model or "").strip()
    if model_code:
        llm = LlmModel.objects.filter(code=model_code, active=True).first()
        if llm is None:
            errors["model"] = f"no active model {model_code!r} in the catalog"
    if errors:
        raise HostInvalid(errors)
    return HostFields(address=address, instance_type=type_code, zone=label, hourly_price=price, model=llm)


def _price(value) -> Decimal | None:
    try:
        price = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not price.is_finite() or price < 0 or price > MAX_PRICE or price.as_tuple().exponent < -4:
        return None
    return price


def register_host(host: HostFields, *, actor, source: str) -> RegisteredHost:
    """Store the host and its join token (audited), then attach it; the clear token comes back once."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    token = JOIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.JOIN_TOKEN_TTL_S)
    requested = {"host": host.address, "zone": host.zone, "instance_type": host.instance_type,
                 "hourly_price": str(host.hourly_price), "model": host.model.code if host.model else ""}
    with transaction.atomic():
        try:
            placement = static_placement(type_code=host.instance_type, zone_label=host.zone, price=host.hourly_price)
        except PlacementInvalid as exc:
            raise HostInvalid(exc.fields) from None
        for row in placement.created:
            record_change("CATALOG_CREATE", target=row, user=user, source=source, after=snapshot(row),
                          metadata={"reason": "registering a host you run yourself"})
        instance = Instance.objects.create(
            provider=placement.provider, zone=placement.zone, instance_type=placement.instance_type, model=host.model,
            requested={**requested, "provider": placement.provider.code}, created_by=user,
            status=Status.PROVISIONING, progress_at=now, public_ip=host.address, cost_per_hour=host.hourly_price,
        )
        JoinToken.objects.create(instance=instance, token_hash=hash_token(token), expires_at=expires_at)
        record_action("REQUEST_CREATE", component=Component.API, instance_id=instance.pk, user=user,
                      status_after=instance.status, request_payload=requested)
        record_change(HOST_REGISTER, target=instance, user=user, source=source,
                      after={**requested, "join_token": Masked(token), "join_token_expires_at": expires_at.isoformat()})
    _attach(instance)
    instance.refresh_from_db()
    plan = launch_plan(host.model, placement.instance_type, provider=placement.provider) if host.model else None
    return RegisteredHost(instance=instance, join_token=token, expires_at=expires_at,
                          plan_fits=None if plan is None else plan.fits, plan_reason="" if plan is None else plan.reason)


def _attach(instance: Instance) -> None:
    """Attach the machine now, through the provisioning path (the static adapter calls no cloud). A failure
    here is left to the lost-provisions sweep, which re-queues the provision: the registration stands."""
    try:
        provision_instance(instance.pk)
    except Exception:  # noqa: BLE001 - the sweep finishes it; the operator has the token either way
        log.exception("host %s: attaching failed; the lost-provisions sweep retries it", instance.pk)
