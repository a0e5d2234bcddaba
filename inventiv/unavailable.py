"""When the database is unreachable: 503 with `Retry-After` from every endpoint, never a 500.

A PostgreSQL restart, failover or network cut makes the driver raise OperationalError (or InterfaceError on
a connection that is already closed). That is no bug of the request's: the client should come back in a few
seconds, and every Inventiv client does (the worker agent honours Retry-After, worker_agent/PROTOCOL.md).
The REST API answers in its one error shape (code `unavailable`), a page answers a plain page that needs no
database, anything else (`/metrics`) plain text.

Connections kept between requests (CONN_MAX_AGE) heal by themselves: a query that failed marks its
connection, and Django's end-of-request hygiene (`close_old_connections`, run by the request handler, the
heartbeat's fast path and before each Celery task) closes a marked connection that no longer answers, so the
next request opens a fresh one.

`DatabaseUnavailableMiddleware` answers for errors raised by views and their templates; `server_error` (the
project's handler500) for those raised by another middleware (a session saved after the view).
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from inventiv.api_errors import error_body
from inventiv.error_pages import server_error_page

log = logging.getLogger(__name__)

# What a client is told to wait: a restart or failover of PostgreSQL takes a few seconds.
RETRY_AFTER_S = 5
MESSAGE = f"The database is unreachable for now (restarting or failing over). Try again in {RETRY_AFTER_S} s."
DATABASE_ERRORS = (OperationalError, InterfaceError)
LOG_EVERY_S = 10
API_PREFIX = "/api/"
# The page a browser gets: standalone, rendered without the request (its context processors read the database).
PAGE = "unavailable.html"


def is_database_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, DATABASE_ERRORS)


class _Throttle:
    """One log line per LOG_EVERY_S at most: a fleet's heartbeats during an outage would write thousands."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last_at = -LOG_EVERY_S
        self.unlogged = 0

    def note(self, where: str, exc: BaseException) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last_at < LOG_EVERY_S:
                self.unlogged += 1
                return
            unlogged, self.unlogged, self.last_at = self.unlogged, 0, now
        first_line = (str(exc).strip().splitlines() or [""])[0]
        log.warning("database unavailable (%s answered 503): %s: %s%s", where, type(exc).__name__, first_line,
                    f" ({unlogged} more 503s since the last line)" if unlogged else "")


note_unavailable = _Throttle().note


def unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 with Retry-After, shaped for whoever asked."""
    note_unavailable(f"{request.method} {request.path}", exc)
    if request.path.startswith(API_PREFIX):
        response = JsonResponse(error_body("unavailable", MESSAGE), status=503)
    elif "text/html" in request.headers.get("Accept", ""):
        response = HttpResponse(render_to_string(PAGE, {"message": MESSAGE, "retry_after_s": RETRY_AFTER_S}), status=503)
    else:
        response = HttpResponse(MESSAGE + "\n", status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_S)
    # Logged above (throttled): Django would log every 5xx again at ERROR, one line per request of the outage.
    response._has_been_logged = True
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_unavailable(exception):
            return unavailable_response(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a 503 when what failed was the database, the branded 500 page otherwise."""
    exc = sys.exc_info()[1]
    if is_database_unavailable(exc):
        return unavailable_response(request, exc)
    return server_error_page()
