"""Requests for a machine: validated against the catalog, always stored, provisioned on commit when valid.

A create request is checked in this order, and a rejected one is stored as `provisioning_failed` with its
code (README, "The instance lifecycle"): MISSING_PARAMS, MISSING_MODEL, INVALID_PROVIDER, INVALID_ZONE,
INACTIVE_ZONE, INVALID_INSTANCE_TYPE, INACTIVE_INSTANCE_TYPE, INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE,
INVALID_MODEL, INCOMPATIBLE_MODEL_INSTANCE.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Zone
from catalog.services import incompatibility_reason, is_offered
from instances.models import Instance
from instances.provisioning import provision_instance_task
from instances.status import ErrorCode, Status
from monitoring.services import Component, Outcome, record_action


# Hosts the operator runs are registered, not requested (README, "A GPU machine you run yourself").
STATIC_REFUSAL = ("Hosts you run yourself are not rented: register the machine (Instances, Register a host, or "
                  "POST /api/hosts/) and start its agent with the join token.")


def request_instance(*, provider: str | None, zone: str | None, instance_type: str | None, model: str | None,
                     actor=None, pool_id=None) -> Instance:
    """Store a request for a machine; provision it on commit when it is valid.

    Every request is kept (REQUEST_CREATE). A rejected one ends `provisioning_failed` with an error code
    and a message for the operator; an accepted one stays `provisioning` and the provision task runs
    after the commit. The caller tells them apart by `status`.
    """
    requested = {"provider": _text(provider), "zone": _text(zone), "instance_type": _text(instance_type),
                 "model": _text(model)}
    if pool_id is not None:
        requested["pool_id"] = str(pool_id)
    found: dict = {}
    rejection = _rejection(requested, found)
    user = actor if getattr(actor, "is_authenticated", False) else None
    now = timezone.now()
    with transaction.atomic():
        if rejection is None:
            instance = Instance.objects.create(
                requested=requested, created_by=user, status=Status.PROVISIONING, progress_at=now, pool_id=pool_id,
                cost_per_hour=found["instance_type"].cost_per_hour, **found,
            )
        else:
            code, message = rejection
            instance = Instance.objects.create(
                requested=requested, created_by=user, status=Status.PROVISIONING_FAILED, error_code=code,
                error_message=message, failed_at=now, pool_id=pool_id, **found,
            )
        record_action(
            "REQUEST_CREATE", component=Component.AUTOSCALER if pool_id is not None else Component.API,
            status=Outcome.SUCCESS if rejection is None else Outcome.FAILED, instance_id=instance.pk, user=user,
            error_code=instance.error_code, error_message=instance.error_message, status_after=instance.status,
            request_payload=requested,
        )
        if rejection is None:
            provision_instance_task.delay_on_commit(str(instance.pk))
    if rejection is None:
        # The provision may have run already (eager tasks, a fast worker). It changes no catalog link, so
        # those stay loaded for the caller (an API answer names them).
        instance.refresh_from_db(fields=[f.attname for f in Instance._meta.concrete_fields if not f.is_relation])
    return instance


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _rejection(req: dict[str, str], found: dict) -> tuple[str, str] | None:
    """Why the request cannot be served, as (error code, message), or None. Fills `found` as it goes."""
    missing = [name for name in ("provider", "zone", "instance_type") if not req[name]]
    if missing:
        return (ErrorCode.MISSING_PARAMS,
                f"Missing {', '.join(missing)}: a request names a provider, a zone and an instance type.")
    if not req["model"]:
        return ErrorCode.MISSING_MODEL, "Missing model: name the LLM model the machine will serve."
    rejection = _offer_rejection(req, found)
    if rejection is not None:
        return rejection
    llm = LlmModel.objects.filter(code=req["model"]).first()
    if llm is None or not llm.active:
        return ErrorCode.INVALID_MODEL, f"Model {req['model']!r} is unknown or inactive."
    found["model"] = llm
    reason = incompatibility_reason(llm, found["instance_type"])
    if reason:
        return ErrorCode.INCOMPATIBLE_MODEL_INSTANCE, reason
    return None


def _offer_rejection(req: dict[str, str], found: dict) -> tuple[str, str] | None:
    """Why the provider, zone and instance type asked for cannot be used together, or None.

    One query when they can (every request the API accepts); the reason is looked for step by step only
    when they cannot.
    """
    offer = (
        InstanceTypeZone.objects.select_related("instance_type__provider", "zone__region")
        .filter(instance_type__provider__code=req["provider"], instance_type__code=req["instance_type"],
                zone__region__provider__code=req["provider"], zone__code=req["zone"])
        .first()
    )
    if offer is not None:
        offer_type, zone = offer.instance_type, offer.zone
        if offer_type.provider.is_static:
            return ErrorCode.INVALID_PROVIDER, STATIC_REFUSAL
        if offer_type.provider.active and zone.active and zone.region.active and offer_type.active:
            found.update(provider=offer_type.provider, zone=zone, instance_type=offer_type)
            return None
    provider = Provider.objects.filter(code=req["provider"]).first()
    if provider is None or not provider.active:
        return ErrorCode.INVALID_PROVIDER, f"Provider {req['provider']!r} is unknown or inactive."
    if provider.is_static:
        return ErrorCode.INVALID_PROVIDER, STATIC_REFUSAL
    found["provider"] = provider
    zone = Zone.objects.select_related("region").filter(region__provider=provider, code=req["zone"]).first()
    if zone is None:
        return ErrorCode.INVALID_ZONE, f"{provider.code} has no zone {req['zone']!r}."
    found["zone"] = zone
    if not (zone.active and zone.region.active):
        return ErrorCode.INACTIVE_ZONE, f"Zone {zone.code} is inactive: machines cannot be requested there now."
    offer = InstanceType.objects.filter(provider=provider, code=req["instance_type"]).first()
    if offer is None:
        return ErrorCode.INVALID_INSTANCE_TYPE, f"{provider.code} has no instance type {req['instance_type']!r}."
    found["instance_type"] = offer
    if not offer.active:
        return ErrorCode.INACTIVE_INSTANCE_TYPE, f"Instance type {offer.code} is inactive."
    if not is_offered(offer, zone):
        return ErrorCode.INSTANCE_TYPE_NOT_AVAILABLE_IN_ZONE, f"{offer.code} is not offered in {zone.code}."
    return None  # an operator enabled the offer between the two reads: it can be used now
