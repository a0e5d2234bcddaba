"""The worker endpoints under /api/worker/: what the worker agent and the machine's install script call.

Plain Django views rather than DRF: these endpoints speak the agent's small fixed protocol
(worker_agent/PROTOCOL.md), not the operator API, and their answers come from worker_protocol.py, which the
heartbeat's ASGI fast path (worker_asgi.py) shares. They authenticate with the instance's worker token
(`Authorization: Bearer ...`; the join, with the host's one-time join token in its body), never a session,
so CSRF does not apply.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from instances import agent_install, worker_protocol
from instances.worker_protocol import MAX_BODY_BYTES, TOO_LARGE, Answer

# How a request names its instance when it has no JSON body (the archive download, the install script).
INSTANCE_HEADER = "HTTP_X_INVENTIV_INSTANCE_ID"
INSTANCE_PARAM = "instance_id"


def _json(answer: Answer) -> JsonResponse:
    status, body = answer
    return JsonResponse(body, status=status, headers=worker_protocol.retry_after_headers(status))


def worker_endpoint(method: str) -> Callable:
    """Accept only `method` and bodies of the protocol's size."""

    def decorate(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest) -> HttpResponse:
            if request.method != method:
                response = _json(worker_protocol.method_not_allowed(request.method))
                response["Allow"] = method
                return response
            try:
                too_large = len(request.body) > MAX_BODY_BYTES
            except RequestDataTooBig:
                too_large = True
            if too_large:
                return _json(TOO_LARGE)
            return view(request)

        return wrapped

    return decorate


def _authorization(request: HttpRequest) -> str:
    return request.META.get("HTTP_AUTHORIZATION", "")


def _named_instance(request: HttpRequest):
    """The instance id a request names outside a JSON body: its header, else its query string."""
    return request.META.get(INSTANCE_HEADER) or request.GET.get(INSTANCE_PARAM)


@worker_endpoint("POST")
def register(request: HttpRequest) -> HttpResponse:
    return _json(worker_protocol.answer(worker_protocol.registration, request.body, _authorization(request)))


@worker_endpoint("POST")
def join(request: HttpRequest) -> HttpResponse:
    """A host the operator runs: its one-time join token (in the body) for a worker token of its own."""
    return _json(worker_protocol.answer(worker_protocol.join, request.body))


@worker_endpoint("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    return _json(worker_protocol.answer_heartbeat(request.body, _authorization(request)))


@worker_endpoint("POST")
def install_failed(request: HttpRequest) -> HttpResponse:
    return _json(worker_protocol.answer(worker_protocol.install_failure, request.body, _authorization(request),
                                        _named_instance(request)))


@worker_endpoint("GET")
def agent_archive(request: HttpRequest) -> HttpResponse:
    status, body = worker_protocol.answer(worker_protocol.archive_access, _named_instance(request),
                                          _authorization(request))
    if status != HTTPStatus.OK:
        return _json((status, body))
    response = HttpResponse(agent_install.agent_archive(), content_type="application/gzip")
    response["Content-Disposition"] = 'attachment; filename="agent.tar.gz"'
    return response


# Included under /api/worker/ by inventiv/urls.py. No trailing slashes: the paths are the protocol's.
urlpatterns = [
    path("join", join, name="worker-join"),
    path("register", register, name="worker-register"),
    path("heartbeat", heartbeat, name="worker-heartbeat"),
    path("install-failed", install_failed, name="worker-install-failed"),
    path("agent.tar.gz", agent_archive, name="worker-agent-archive"),
]
