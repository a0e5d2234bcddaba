"""Helpers every dashboard page shares: when a request gets a fragment, and who may change things."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


def is_fragment(request: HttpRequest) -> bool:
    """An HTMX request gets the named partial; everything else gets the whole page."""
    # HTMX restoring history after a cache miss wants the whole page, not a fragment.
    return bool(request.htmx) and not request.htmx.history_restore_request


def staff_required(view):
    """Signed-in staff only: others are sent to the login page (anonymous) or refused (403)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("This needs a staff account")
        return view(request, *args, **kwargs)

    return wrapper


def asks_for(request: HttpRequest, target_id: str) -> bool:
    """An HTMX request aimed at the element with this id (a live region's refresh, a filter form's swap):
    it gets that element's partial only (README, "Using it": live pages)."""
    return is_fragment(request) and request.htmx.target == target_id
