"""The router's dashboard pages: API keys, request traces, served models and the Playground.

HTMX requests get the named partial they swap; every form and link also works without JavaScript.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from inventiv.pages import asks_for, is_fragment, staff_required
from monitoring.audit import Source
from router import selectors, services
from router.forms import ApiKeyForm, TraceFilterForm
from router.models import ApiKey

API_KEYS = "router/api_keys.html"
TRACES = "router/traces.html"
MODELS = "router/models.html"
PLAYGROUND = "router/playground.html"
TRACES_PAGE_SIZE = 50
# The Models page's live part (README, "Using it").
MODELS_LIVE_TARGET = "models-live"


def _render(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    response = render(request, template, context)
    # Caches must not hand the whole page to HTMX or a fragment to a plain visit.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _keys_page(request: HttpRequest, **context) -> HttpResponse:
    context.setdefault("form", ApiKeyForm())
    return _render(request, API_KEYS, {"keys": selectors.api_keys(), **context})


@login_required
@require_GET
def api_key_list(request: HttpRequest) -> HttpResponse:
    return _keys_page(request)


@staff_required
@require_POST
def api_key_create(request: HttpRequest) -> HttpResponse:
    """Create a key and answer with its clear value, shown this once (never redirected to: it is not kept)."""
    form = ApiKeyForm(request.POST)
    api_key = clear_key = None
    if form.is_valid():
        try:
            api_key, clear_key = services.create_api_key(created_by=request.user, source=Source.PAGE,
                                                         **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
    context = {"form": ApiKeyForm() if api_key else form, "api_key": api_key, "clear_key": clear_key}
    if is_fragment(request):
        return _render(request, f"{API_KEYS}#create_panel", context)
    return _keys_page(request, **context)


@staff_required
@require_POST
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    api_key = services.revoke_api_key(get_object_or_404(ApiKey, pk=pk), actor=request.user, source=Source.PAGE)
    if is_fragment(request):
        return _render(request, f"{API_KEYS}#row", {"key": api_key})
    return redirect("router:api-keys")


@login_required
@require_GET
def trace_list(request: HttpRequest) -> HttpResponse:
    """Newest first, a page at a time: the last row of a page loads the next one when scrolled into view.
    Pages are cut by offset without a COUNT, which would scan every matching trace."""
    form = TraceFilterForm(request.GET)
    page = max(1, int(request.GET["page"])) if request.GET.get("page", "").isdigit() else 1
    start = (page - 1) * TRACES_PAGE_SIZE
    rows = list(form.traces()[start:start + TRACES_PAGE_SIZE + 1])
    query = request.GET.copy()
    query["page"] = page + 1
    # Older pages, loaded by scrolling, hold the live refresh back (it would take them away again).
    context = {"form": form, "traces": rows[:TRACES_PAGE_SIZE], "next_query": query.urlencode(),
               "has_next": len(rows) > TRACES_PAGE_SIZE, "older": page > 1}
    template = f"{TRACES}#rows" if is_fragment(request) else TRACES
    return _render(request, template, context)


@login_required
@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    """The whole page, or its table alone (what the page refreshes every few seconds)."""
    template = f"{MODELS}#live" if asks_for(request, MODELS_LIVE_TARGET) else MODELS
    return _render(request, template, {"models": selectors.served_models(now=timezone.now())})


@login_required
@require_GET
def playground(request: HttpRequest) -> HttpResponse:
    """The page only: the browser calls /v1 itself, with a key the user pastes and the server never sees."""
    models = selectors.ready_model_codes()
    chosen = request.GET.get("model")
    context = {"models": models, "selected": chosen if chosen in models else next(iter(models), ""),
               "base_url": request.build_absolute_uri("/v1")}
    return _render(request, PLAYGROUND, context)
