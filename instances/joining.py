"""The join: the worker agent of a host the operator runs exchanges its one-time join token for the
instance's own worker token (README, "A GPU machine you run yourself"; worker_agent/PROTOCOL.md, "Join").

`POST /api/worker/join` carries `{"join_token", "model", "engine_port", "engine_api_key"}`. The token is
looked up by its hash under a row lock, so two agents racing with one token get one worker token between
them. A token nobody issued is a 401; one used already, expired, or of a host that was detached or failed is
a 403; a host still being attached is a 409 (the agent asks again). The answer is the instance id and a new
worker token (only its hash is stored); the engine key the operator chose is stored encrypted like every
engine key, the engine port and the model are stored on the instance, and the token is spent.
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from catalog.models import LlmModel
from instances.credentials import TOKEN_BYTES, hash_token
from instances.models import Instance, JoinToken
from instances.status import STARTUP, Status
from instances.workers import WorkerAuthFailed, heartbeat_interval_s
from inventiv.crypto import encrypt_text
from monitoring.heartbeats import PayloadInvalid
from monitoring.services import Component, record_action

WORKER_JOINED = "WORKER_JOINED"
MAX_KEY_CHARS = 500
MIN_KEY_CHARS = 8
MAX_MODEL_CHARS = 200


class JoinRefused(Exception):
    """The join token is known but cannot be used (spent, expired, or its host gone): HTTP 403."""


class JoinTooEarly(Exception):
    """The host is still being attached: the agent asks again (HTTP 409)."""


def validate_join(payload: dict) -> tuple[str, str, int, str]:
    """(join token, model, engine port, engine key) from the body; raises PayloadInvalid naming each bad field.
    A missing token is an authentication failure, like a missing worker token."""
    token = payload.get("join_token")
    if not isinstance(token, str) or not token.strip():
        raise WorkerAuthFailed("missing join token")
    errors = {}
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_CHARS or "\x00" in model:
        errors["model"] = f"the catalog code of the model the engine serves (at most {MAX_MODEL_CHARS} characters)"
    port = payload.get("engine_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        errors["engine_port"] = "the engine's TCP port, 1-65535"
    key = payload.get("engine_api_key")
    if (not isinstance(key, str) or not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS or key != key.strip()
            or "\x00" in key):
        errors["engine_api_key"] = (f"the key the engine requires, {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters "
                                    "without surrounding spaces")
    if errors:
        raise PayloadInvalid(errors)
    return token.strip(), model.strip(), port, key


def join_host(payload: dict) -> dict:
    """Spend the join token of `payload` and answer `{"instance_id", "worker_token", "heartbeat_interval_s"}`."""
    token, model_code, engine_port, engine_key = validate_join(payload)
    worker_token = secrets.token_urlsafe(TOKEN_BYTES)
    now = timezone.now()
    with transaction.atomic():
        join = (JoinToken.objects.select_for_update(of=("self",)).select_related("instance", "instance__model")
                .filter(token_hash=hash_token(token)).first())
        if join is None:
            raise WorkerAuthFailed("invalid join token")
        instance = join.instance
        if join.used_at is not None:
            raise JoinRefused("join token already used: the agent keeps the worker token it got in its state "
                              "directory; register the host again for a new join token")
        if now >= join.expires_at:
            raise JoinRefused("join token expired: register the host again for a new one")
        if instance.status == Status.PROVISIONING:
            raise JoinTooEarly("the host is still being attached; ask again")
        if instance.status not in STARTUP:
            raise JoinRefused(f"the host is {instance.status}: register it again")
        model = _served_model(instance, model_code)
        Instance.objects.filter(pk=instance.pk).update(
            worker_token_hash=hash_token(worker_token), engine_api_key_encrypted=encrypt_text(engine_key),
            engine_port=engine_port, model=model)
        JoinToken.objects.filter(pk=join.pk).update(used_at=now)
        record_action(WORKER_JOINED, component=Component.WORKER, instance_id=instance.pk,
                      status_before=instance.status, status_after=instance.status,
                      metadata={"model": model.code, "engine_port": engine_port})
    return {"instance_id": str(instance.pk), "worker_token": worker_token,
            "heartbeat_interval_s": heartbeat_interval_s()}


def _served_model(instance: Instance, code: str) -> LlmModel:
    """The model the host serves: the one it was registered for, else the catalog model the agent names."""
    if instance.model_id is not None:
        if instance.model.code != code:
            raise PayloadInvalid({"model": f"this host was registered to serve {instance.model.code}"})
        return instance.model
    model = LlmModel.objects.filter(code=code, active=True).first()
    if model is None:
        raise PayloadInvalid({"model": f"no active model {code!r} in the catalog"})
    return model
