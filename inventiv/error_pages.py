"""The branded server-error page (README, "Pages"): the site's frame and navigation, rendered without the
request, so that it needs no database (the user and the messages live there) and cannot fail again.

Not found (404) and not allowed (403) use Django's own handlers with `templates/404.html` and `403.html`,
which render with the request like every page.
"""

from django.conf import settings
from django.http import HttpResponse, HttpResponseServerError
from django.template.loader import render_to_string

TEMPLATE = "500.html"


def server_error_page() -> HttpResponse:
    body = render_to_string(TEMPLATE, {"show_nav": True, "INVENTIV_VERSION": settings.VERSION})
    return HttpResponseServerError(body)
