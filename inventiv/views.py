from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from finops.selectors import budget_alerts, spend_series, spend_summary
from finops.serializers import SeriesSerializer
from finops.traffic import rates
from instances.selectors import status_counts
from inventiv.pages import asks_for
from monitoring.selectors import action_logs, with_action_types
from router.selectors import ttft_p95_by_model

HOME = "home.html"
# The part of the dashboard the page refreshes every few seconds (README, "Using it").
LIVE_TARGET = "dashboard-live"
RECENT_ACTIONS = 10
SPEND_CHART_WINDOW = timedelta(hours=24)


@login_required
def home(request):
    """Instances, money (burn rate, spend, budget alerts), traffic (rates, TTFT p95) and the latest actions."""
    now = timezone.now()
    instances = status_counts()
    series = spend_series(start=now - SPEND_CHART_WINDOW, end=now, bucket="hour", group_by=None)
    template = f"{HOME}#live" if asks_for(request, LIVE_TARGET) else HOME
    response = render(request, template, {
        "instances": instances,
        "statuses": [(status, n) for status, n in instances["by_status"].items() if n],
        "costs": spend_summary(now=now),
        "spend_series": SeriesSerializer(series).data,
        "traffic": rates(now=now),
        "ttft_p95": ttft_p95_by_model(now=now),
        "actions": with_action_types(action_logs()[:RECENT_ACTIONS]),
        "budgets": budget_alerts(now=now),
    })
    # Caches must not hand the whole page to HTMX or a fragment to a plain visit.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response
