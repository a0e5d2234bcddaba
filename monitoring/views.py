"""The Monitoring page: the action log, filtered, counted per status, loaded page by page as it scrolls."""

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from monitoring.filters import WINDOW_LABELS, ActionLogFilter, is_narrowed
from monitoring.models import ActionLog
from monitoring.selectors import MAX_OFFSET, action_log_page, action_log_stats, action_logs, action_types_by_code
from monitoring.serializers import ActionLogSerializer

PAGE = "monitoring/action_log.html"
PAGE_SIZE = 50
# The id of the section the filter form swaps (counts and table); a request aimed at it gets only that.
LOG_TARGET = "log"


def _offset(request: HttpRequest) -> int:
    try:
        return min(max(0, int(request.GET.get("offset", 0))), MAX_OFFSET)
    except ValueError:
        return 0


def _next_page_url(request: HttpRequest, offset: int) -> str:
    params = request.GET.copy()
    params["offset"] = offset
    return f"{request.path}?{params.urlencode()}"


@login_required
@require_GET
def action_log(request: HttpRequest) -> HttpResponse:
    filterset = ActionLogFilter(request.GET, queryset=action_logs())
    matching = filterset.qs if filterset.is_valid() else ActionLog.objects.none()
    offset = _offset(request)
    rows, has_more = action_log_page(matching, offset=offset, limit=PAGE_SIZE)
    for row, data in zip(rows, ActionLogSerializer(rows, many=True).data, strict=True):
        row.as_json = json.dumps(data, indent=2)
    context = {
        "filterset": filterset,
        "rows": rows,
        "next_url": _next_page_url(request, offset + PAGE_SIZE) if has_more else None,
    }
    if request.htmx and not request.htmx.history_restore_request and offset > 0:
        # Older rows loaded by scrolling hold the live refresh back, which would take them away again.
        context["older"] = True
        template = f"{PAGE}#rows"
    else:
        context["stats"] = action_log_stats(
            matching, narrowed=is_narrowed(request.GET), status=request.GET.get("status")
        ) if filterset.is_valid() else None
        # Labels, as the timeline shows them; the codes stay the values (and the API's vocabulary).
        context["action_types"] = sorted(((code, action_type.label) for code, action_type in
                                          action_types_by_code().items()), key=lambda pair: pair[1].lower())
        context["windows"] = list(WINDOW_LABELS.items())
        context["components"] = ActionLog.Component.choices
        context["statuses"] = ActionLog.Status.choices
        context["selected_types"] = request.GET.getlist("action_type")
        fragment = request.htmx and request.htmx.target == LOG_TARGET and not request.htmx.history_restore_request
        template = f"{PAGE}#log" if fragment else PAGE
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response
