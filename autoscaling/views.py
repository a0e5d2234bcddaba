"""The Pools pages: the list (with the form for a new pool), one pool's page, and the delete confirmation.

HTMX requests get the named partial they swap; every form and link also works without JavaScript.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from autoscaling import selectors
from autoscaling.forms import PoolForm
from autoscaling.models import Pool
from autoscaling.pools import PoolInUse, delete_pool, set_pool_enabled
from inventiv.pages import asks_for, is_fragment, staff_required
from monitoring.audit import Source

LIST = "autoscaling/pools.html"
DETAIL = "autoscaling/pool_detail.html"
DELETE = "autoscaling/pool_delete.html"
# The list page's live part (README, "Using it").
LIVE_TARGET = "pools-live"
# The detail page's chart and history cover this much time.
CHART_MINUTES = 60


def _render(request: HttpRequest, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    # Caches must not hand the whole page to HTMX or a fragment to a plain visit.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _pool(name: str) -> Pool:
    pool = selectors.pool_by_name(name)
    if pool is None:
        raise Http404(f"No pool named {name}")
    return pool


def _detail_context(pool: Pool, **extra) -> dict:
    return {
        "pool": pool,
        "members": selectors.pool_members(pool),
        "samples": selectors.pool_samples(pool, minutes=CHART_MINUTES),
        "decisions": selectors.pool_decisions(pool),
        "decision_logs": selectors.pool_decision_logs(pool),
        "chart_minutes": CHART_MINUTES,
        **extra,
    }


@login_required
@require_GET
def pool_list(request: HttpRequest) -> HttpResponse:
    """The whole page, or its table alone (what the page refreshes every few seconds)."""
    context = {"pools": selectors.pool_list()}
    if asks_for(request, LIVE_TARGET):
        return _render(request, f"{LIST}#live", context)
    if request.user.is_staff:
        context["form"] = PoolForm()
    return _render(request, LIST, context)


@login_required
@require_GET
def pool_row(request: HttpRequest, name: str) -> HttpResponse:
    """One row of the list (what a pool action swaps; the list itself refreshes as a whole)."""
    return _render(request, f"{LIST}#row", {"pool": _pool(name)})


@staff_required
@require_POST
def pool_create(request: HttpRequest) -> HttpResponse:
    """A new pool: HTMX gets the form back (fresh, or with its errors) and the new row; a plain post is
    sent to the pool's page, or gets the list page again with the form's errors."""
    form = PoolForm(request.POST)
    pool = form.save(actor=request.user) if form.is_valid() else None
    if not is_fragment(request):
        if pool is not None:
            return redirect("autoscaling:pool", pool.name)
        return _render(request, LIST, {"pools": selectors.pool_list(), "form": form})
    if pool is None:
        return _render(request, f"{LIST}#create_panel", {"form": form})
    return _render(request, f"{LIST}#create_panel", {"form": PoolForm(), "created": selectors.pool_by_name(pool.name)})


@login_required
@require_GET
def pool_detail(request: HttpRequest, name: str) -> HttpResponse:
    """The whole page, or its live part (size, members, chart, decisions) that the page refreshes."""
    pool = _pool(name)
    if is_fragment(request):
        return _render(request, f"{DETAIL}#live", _detail_context(pool))
    form = PoolForm(pool=pool) if request.user.is_staff else None
    return _render(request, DETAIL, _detail_context(pool, form=form))


@staff_required
@require_POST
def pool_edit(request: HttpRequest, name: str) -> HttpResponse:
    pool = _pool(name)
    form = PoolForm(request.POST, pool=pool)
    saved = form.save(actor=request.user) if form.is_valid() else None
    if saved is not None:
        url = reverse("autoscaling:pool", args=[saved.name])
        return HttpResponseClientRedirect(url) if is_fragment(request) else redirect(url)
    if is_fragment(request):
        return _render(request, f"{DETAIL}#edit_panel", {"pool": pool, "form": form, "editing": True})
    return _render(request, DETAIL, _detail_context(pool, form=form, editing=True))


@staff_required
@require_POST
def pool_toggle(request: HttpRequest, name: str) -> HttpResponse:
    """Enable a disabled pool, or disable an enabled one."""
    pool = _pool(name)
    set_pool_enabled(pool, enabled=not pool.enabled, actor=request.user, source=Source.PAGE)
    if is_fragment(request):
        return _render(request, f"{DETAIL}#header", {"pool": _pool(name)})
    return redirect("autoscaling:pool", name)


@staff_required
def pool_delete(request: HttpRequest, name: str) -> HttpResponse:
    """GET asks to confirm (listing what still runs); POST deletes, or says why it cannot (409)."""
    pool = _pool(name)
    context = {"pool": pool, "members": selectors.pool_members(pool)}
    if request.method == "POST":
        try:
            delete_pool(pool, actor=request.user, source=Source.PAGE)
        except PoolInUse as refused:
            return _render(request, DELETE, {**context, "refused": str(refused)}, status=409)
        return redirect("autoscaling:pools")
    return _render(request, DELETE, context)

