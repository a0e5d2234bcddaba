"""The worker endpoints' answers, whatever serves them: the Django views (worker_api.py) and the heartbeat's
raw ASGI fast path (worker_asgi.py) both answer through here, so the protocol (worker_agent/PROTOCOL.md)
is written once.

An answer is (HTTP status, JSON object): 200 with the result; 400 with every bad field; 401 for any token
problem (the same answer whether or not the instance exists); 403 for a join token spent, expired or of a
host that is gone; 405 for another method; 409 when a heartbeat comes before the registration, or a join
before its host is attached; 413 for a body far larger than any the agent sends; 503 while the database
cannot be reached (the HTTP layers add `Retry-After`: `retry_after_headers`), which the agent waits out.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from instances.agent_install import report_install_failure, validate_install_failure
from instances.joining import JoinRefused, JoinTooEarly, join_host
from instances.models import Instance
from instances.workers import NotRegistered, WorkerAuthFailed, accept_heartbeat, authenticate_worker, register_worker
from inventiv.unavailable import DATABASE_ERRORS, RETRY_AFTER_S, note_unavailable
from monitoring.heartbeats import PayloadInvalid, validate_heartbeat, validate_registration

Answer = tuple[int, dict]

BEARER = "Bearer "
# Bodies are a few KB; anything far larger is not the agent speaking.
MAX_BODY_BYTES = 256 * 1024
TOO_LARGE: Answer = (413, {"error": "body too large"})
UNAVAILABLE: Answer = (503, {"error": "database unavailable, retry later"})


def method_not_allowed(method: str) -> Answer:
    return 405, {"error": f"method {method} not allowed"}


def answer(handler: Callable[..., dict], *args) -> Answer:
    """Run `handler(*args)` and answer with its result, or with the error it raised."""
    try:
        return 200, handler(*args)
    except PayloadInvalid as exc:
        return 400, {"error": "invalid payload", "fields": exc.errors}
    except WorkerAuthFailed as exc:
        return 401, {"error": str(exc)}
    except NotRegistered:
        return 409, {"error": "not registered"}
    except JoinRefused as exc:
        return 403, {"error": str(exc)}
    except JoinTooEarly as exc:
        return 409, {"error": str(exc)}
    except DATABASE_ERRORS as exc:
        note_unavailable(f"worker {handler.__name__}", exc)
        return UNAVAILABLE


def retry_after_headers(status: int) -> dict[str, str]:
    """The headers an answer with `status` carries beyond its JSON: how long a 503 asks the agent to wait."""
    return {"Retry-After": str(RETRY_AFTER_S)} if status == UNAVAILABLE[0] else {}


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    if not authorization.startswith(BEARER):
        return None
    return authorization[len(BEARER):].strip() or None


def json_object(body: bytes) -> dict:
    """The body as a JSON object; raises PayloadInvalid otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadInvalid({"body": "must be JSON"}) from None
    if not isinstance(payload, dict):
        raise PayloadInvalid({"body": "must be a JSON object"})
    return payload


def authenticated(instance_id, authorization: str) -> Instance:
    """The instance `instance_id` when the header carries its worker token; raises WorkerAuthFailed otherwise."""
    return authenticate_worker(instance_id=instance_id, token=bearer_token(authorization))


def heartbeat(body: bytes, authorization: str) -> dict:
    payload = json_object(body)
    instance = authenticated(payload.get("instance_id"), authorization)
    return accept_heartbeat(instance, validate_heartbeat(payload))


def answer_heartbeat(body: bytes, authorization: str) -> Answer:
    """A heartbeat's whole answer from its raw body and Authorization header (both paths serve it)."""
    return answer(heartbeat, body, authorization)


def registration(body: bytes, authorization: str) -> dict:
    payload = json_object(body)
    instance = authenticated(payload.get("instance_id"), authorization)
    return register_worker(instance, validate_registration(payload))


def join(body: bytes) -> dict:
    """A host the operator runs joins: its join token for a worker token (instances/joining.py)."""
    return join_host(json_object(body))


def install_failure(body: bytes, authorization: str, named_instance) -> dict:
    """The install script's report; the instance is named in the body, else by `named_instance`."""
    payload = json_object(body)
    instance = authenticated(payload.get("instance_id") or named_instance, authorization)
    step, message = validate_install_failure(payload)
    return {"instance_status": report_install_failure(instance, step=step, message=message).status}


def archive_access(named_instance, authorization: str) -> dict:
    """Nothing to say when the request may download the agent archive (the view sends it); raises otherwise."""
    authenticated(named_instance, authorization)
    return {}
