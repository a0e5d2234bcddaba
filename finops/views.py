"""The FinOps page (charts and cost per million tokens) and the Prometheus endpoint."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from finops import calc, metrics, selectors
from finops.serializers import SeriesSerializer, TokenCostsSerializer
from inventiv.pages import asks_for

PAGE = "finops/page.html"
# The part of the page it refreshes every few seconds (README, "Using it").
LIVE_TARGET = "finops-live"
PAGE_WINDOWS = ("6h", "24h", "7d", "30d")
DEFAULT_WINDOW = "24h"


@login_required
@require_GET
def finops_page(request: HttpRequest) -> HttpResponse:
    """Spend over time and by provider, model and pool over a window, and cost per million tokens."""
    chosen = request.GET.get("window", DEFAULT_WINDOW)
    if chosen not in PAGE_WINDOWS:
        chosen = DEFAULT_WINDOW
    window = calc.parse_window(chosen)
    now = timezone.now()
    bucket = selectors.page_bucket(window)
    start = selectors.page_start(window, now=now)
    series = selectors.spend_series(start=start, end=now, bucket=bucket, group_by="model")
    breakdowns = {group: selectors.spend_by(group, start=start, end=now) for group in ("provider", "model", "pool")}
    breakdowns["pool"] = selectors.named_by_pool(breakdowns["pool"])
    context = {
        "windows": PAGE_WINDOWS,
        "window": chosen,
        "start": start,
        "total": selectors.spend(start=start, end=now),
        "summary": selectors.spend_summary(now=now),
        "series": SeriesSerializer(series).data,
        "breakdowns": {group: [{"key": row["key"], "amount": str(row["amount"])} for row in rows]
                       for group, rows in breakdowns.items()},
        "token_costs": TokenCostsSerializer(selectors.token_costs(start=start, end=now)).data,
        "budgets": selectors.budget_alerts(now=now),
    }
    template = f"{PAGE}#live" if asks_for(request, LIVE_TARGET) else PAGE
    response = render(request, template, context)
    # Caches must not hand the whole page to HTMX or a fragment to a plain visit.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for a bearer token or an allowed client address (403 otherwise)."""
    if not metrics.may_scrape(request):
        return HttpResponseForbidden("Forbidden: send the metrics token as a bearer token, or scrape from an "
                                     "address in INVENTIV_METRICS_ALLOWED_IPS.\n", content_type="text/plain")
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
