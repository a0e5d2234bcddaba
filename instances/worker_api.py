"""The worker endpoints under /api/worker/: what the worker agent and the machine's install script call.

Plain Django views rather than DRF: the heartbeat is the hottest write path of the control plane, and
these endpoints speak the agent's small fixed protocol (worker_agent/PROTOCOL.md), not the operator API.
They authenticate with the instance's worker token (`Authorization: Bearer ...`), never a session, so
CSRF does not apply. Every answer is JSON: 400 with the bad fields, 401 for any token problem (the same
answer whether or not the instance exists), 409 when a heartbeat comes before the registration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from instances import workers
from instances.workers import NotRegistered, WorkerAuthFailed
from monitoring.heartbeats import PayloadInvalid, validate_heartbeat, validate_registration

BEARER = "Bearer "
# How a request names its instance when it has no JSON body (the archive download, the install script).
INSTANCE_HEADER = "HTTP_X_INVENTIV_INSTANCE_ID"
INSTANCE_PARAM = "instance_id"


def worker_endpoint(method: str) -> Callable:
    """Accept only `method`, and turn the worker services' errors into the protocol's JSON answers."""

    def decorate(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest) -> HttpResponse:
            if request.method != method:
                response = JsonResponse({"error": f"method {request.method} not allowed"}, status=405)
                response["Allow"] = method
                return response
            try:
                return view(request)
            except PayloadInvalid as exc:
                return JsonResponse({"error": "invalid payload", "fields": exc.errors}, status=400)
            except WorkerAuthFailed as exc:
                return JsonResponse({"error": str(exc)}, status=401)
            except NotRegistered:
                return JsonResponse({"error": "not registered"}, status=409)

        return wrapped

    return decorate


def _json_body(request: HttpRequest) -> dict:
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadInvalid({"body": "must be JSON"}) from None
    if not isinstance(payload, dict):
        raise PayloadInvalid({"body": "must be a JSON object"})
    return payload


def _token(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith(BEARER):
        return None
    return header[len(BEARER):].strip() or None


def _named_instance(request: HttpRequest, payload: dict | None = None):
    """The instance id the request names: in its JSON body, else its header, else its query string."""
    return ((payload or {}).get("instance_id") or request.META.get(INSTANCE_HEADER)
            or request.GET.get(INSTANCE_PARAM))


@worker_endpoint("POST")
def register(request: HttpRequest) -> HttpResponse:
    payload = _json_body(request)
    instance = workers.authenticate_worker(instance_id=payload.get("instance_id"), token=_token(request))
    return JsonResponse(workers.register_worker(instance, validate_registration(payload)))


def answer_heartbeat(body: bytes, authorization: str) -> tuple[int, dict]:
    """A heartbeat's whole answer (status, JSON) from its raw body and Authorization header.

    Shared by the Django view below and the ASGI fast path (instances/worker_asgi.py), which serves the
    same protocol without Django's request stack.
    """
    try:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise PayloadInvalid({"body": "must be JSON"}) from None
        if not isinstance(payload, dict):
            raise PayloadInvalid({"body": "must be a JSON object"})
        token = (authorization[len(BEARER):].strip() or None) if authorization.startswith(BEARER) else None
        instance = workers.authenticate_worker(instance_id=payload.get("instance_id"), token=token)
        return 200, workers.accept_heartbeat(instance, validate_heartbeat(payload))
    except PayloadInvalid as exc:
        return 400, {"error": "invalid payload", "fields": exc.errors}
    except WorkerAuthFailed as exc:
        return 401, {"error": str(exc)}
    except NotRegistered:
        return 409, {"error": "not registered"}


@worker_endpoint("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    status, answer = answer_heartbeat(request.body, request.META.get("HTTP_AUTHORIZATION", ""))
    return JsonResponse(answer, status=status)


@worker_endpoint("POST")
def install_failed(request: HttpRequest) -> HttpResponse:
    payload = _json_body(request)
    instance = workers.authenticate_worker(instance_id=_named_instance(request, payload), token=_token(request))
    step, message = workers.validate_install_failure(payload)
    instance = workers.report_install_failure(instance, step=step, message=message)
    return JsonResponse({"instance_status": instance.status})


@worker_endpoint("GET")
def agent_archive(request: HttpRequest) -> HttpResponse:
    workers.authenticate_worker(instance_id=_named_instance(request), token=_token(request))
    response = HttpResponse(workers.agent_archive(), content_type="application/gzip")
    response["Content-Disposition"] = 'attachment; filename="agent.tar.gz"'
    return response


# Included under /api/worker/ by inventiv/urls.py. No trailing slashes: the paths are the protocol's.
urlpatterns = [
    path("register", register, name="worker-register"),
    path("heartbeat", heartbeat, name="worker-heartbeat"),
    path("install-failed", install_failed, name="worker-install-failed"),
    path("agent.tar.gz", agent_archive, name="worker-agent-archive"),
]
