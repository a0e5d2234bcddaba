"""The Instances pages: the active list with its create form, one instance with its timeline, the traces.

The list's rows and counts, and the detail page's panels, are live regions (static/js/live.js): the page
fetches them again every few seconds while it is shown (README, "Using it"). Links keep their href and forms their action:
without JavaScript a POST redirects back to a whole page.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from catalog.provider_checks import configuration_problem, unconfigured_providers
from instances import draining, requests, selectors, termination
from instances.lifecycle import InvalidTransition
from instances.models import Instance
from instances.status import Status
from inventiv.enqueue import watch_enqueues
from inventiv.pages import asks_for, is_fragment, staff_required

LIST = "instances/list.html"
DETAIL = "instances/detail.html"
TRACES = "instances/archived.html"
TRACES_PAGE_SIZE = 50
# Active machines are few; rejected requests pile up until archived. The page shows the newest this many.
ACTIVE_LIST_LIMIT = 200
# The id of the detail page's refreshable panel; an HTMX request aimed at it gets the panel, else the row.
DETAIL_TARGET = "instance-detail"
# The list page's live part (rows and counts), refreshed every few seconds (README, "Using it").
LIVE_TARGET = "instances-live"


def _get_instance(pk) -> Instance:
    return get_object_or_404(selectors.instances(), pk=pk)


def _render(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    response = render(request, template, context)
    # Caches must not hand the whole page to HTMX or a fragment to a plain visit.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _render_instance(request: HttpRequest, instance: Instance, **extra) -> HttpResponse:
    """The fragment the request swaps: the detail panel, or the list row (nothing once archived: the row goes)."""
    if request.htmx.target == DETAIL_TARGET:
        instance.timeline = selectors.timeline(instance)
        return _render(request, f"{DETAIL}#panel", {"instance": instance, **extra})
    if instance.status == Status.ARCHIVED:
        return HttpResponse("")
    return _render(request, f"{LIST}#row", {"instance": selectors.with_heartbeats([instance])[0], **extra})


@login_required
@require_GET
def instance_list(request: HttpRequest) -> HttpResponse:
    """The whole page, or its live part (rows and counts) that the page refreshes every few seconds."""
    context = {
        "instances": selectors.with_heartbeats(selectors.active_instances()[:ACTIVE_LIST_LIMIT]),
        "limit": ACTIVE_LIST_LIMIT,
        "counts": selectors.status_counts(),
    }
    if asks_for(request, LIVE_TARGET):
        return _render(request, f"{LIST}#live", context)
    zones = selectors.offered_zones()
    unconfigured = unconfigured_providers({zone.region.provider for zone in zones})
    return _render(request, LIST, {**context, "zones": zones, "unconfigured": unconfigured})


@login_required
@require_GET
def instance_type_options(request: HttpRequest) -> HttpResponse:
    """The GPU-type select for the chosen zone (and an emptied model select, swapped out of band)."""
    zone = selectors.chosen_zone(request.GET.get("zone"))
    context = {"types": selectors.offered_instance_types(zone), "oob": True}
    return _render(request, f"{LIST}#type_field", context)


@login_required
@require_GET
def model_options(request: HttpRequest) -> HttpResponse:
    """The model select for the chosen GPU type: only models it can serve."""
    instance_type = selectors.chosen_instance_type(request.GET.get("instance_type"))
    return _render(request, f"{LIST}#model_field", {"models": selectors.offered_models(instance_type)})


@staff_required
@require_POST
def instance_create(request: HttpRequest) -> HttpResponse:
    zone = selectors.chosen_zone(request.POST.get("zone"))
    problem = configuration_problem(zone.region.provider) if zone is not None else ""
    if problem:
        # Refused before anything is stored or rented (README, "Providers"): nothing to watch fail.
        refusal = f"Not requested: {zone.region.provider.name} is not configured. {problem}"
        if is_fragment(request):
            return _render(request, f"{LIST}#refused", {"refusal": refusal})
        messages.error(request, refusal)
        return redirect("instances:list")
    codes = selectors.request_codes(
        zone_id=request.POST.get("zone"),
        instance_type_id=request.POST.get("instance_type"),
        model_id=request.POST.get("model"),
    )
    with watch_enqueues() as enqueues:
        instance = requests.request_instance(**codes, actor=request.user)
    if is_fragment(request):
        return _render(request, f"{LIST}#created", {"instance": instance})
    if instance.status == Status.PROVISIONING_FAILED:
        messages.error(request, f"{instance.error_code}: {instance.error_message}")
    else:
        # README, "The instance lifecycle": the request is saved either way.
        queued = "" if enqueues.all_sent else " The task queue is unreachable: a sweep provisions it once it is back."
        messages.success(request, f"Instance {instance.pk} requested.{queued}")
    return redirect("instances:list")


@login_required
@require_GET
def instance_row(request: HttpRequest, pk) -> HttpResponse:
    """One row of the list (what a transitional row polls)."""
    if not is_fragment(request):
        return redirect("instances:detail", pk)
    return _render_instance(request, _get_instance(pk))


@login_required
@require_GET
def instance_detail(request: HttpRequest, pk) -> HttpResponse:
    instance = _get_instance(pk)
    instance.timeline = selectors.timeline(instance)
    template = f"{DETAIL}#panel" if is_fragment(request) and request.htmx.target == DETAIL_TARGET else DETAIL
    return _render(request, template, {"instance": instance, "worker": selectors.worker_status(instance)})


@login_required
@require_GET
def instance_worker(request: HttpRequest, pk) -> HttpResponse:
    """The detail page's Worker panel alone (what it polls every few seconds until the instance is finished)."""
    if not is_fragment(request):
        return redirect("instances:detail", pk)
    instance = _get_instance(pk)
    return _render(request, f"{DETAIL}#worker", {"instance": instance, "worker": selectors.worker_status(instance)})


def _act(request: HttpRequest, pk, change, *, refusal: str) -> HttpResponse:
    """Apply `change` to the instance; answer with its fresh fragment (HTMX) or redirect to its page."""
    instance = get_object_or_404(Instance, pk=pk)
    error = ""
    try:
        instance = change(instance)
    except InvalidTransition as exc:
        error = f"This instance is {exc.before}: {refusal}."
    except draining.DrainRefused:
        error = f"This instance is {instance.status}: {refusal}."
    if is_fragment(request):
        return _render_instance(request, _get_instance(instance.pk), action_error=error)
    if error:
        messages.error(request, error)
    return redirect("instances:detail", instance.pk)


@staff_required
@require_POST
def instance_terminate(request: HttpRequest, pk) -> HttpResponse:
    return _act(request, pk, lambda instance: termination.terminate_instance(
        instance, reason="operator request from the dashboard", actor=request.user
    ), refusal="it cannot be terminated")


@staff_required
@require_POST
def instance_drain(request: HttpRequest, pk) -> HttpResponse:
    return _act(request, pk, lambda instance: draining.drain_instance(
        instance, reason="operator request from the dashboard", actor=request.user
    ), refusal="only a ready instance can be drained")


@staff_required
@require_POST
def instance_archive(request: HttpRequest, pk) -> HttpResponse:
    return _act(
        request, pk, lambda instance: termination.archive_instance(instance, actor=request.user),
        refusal="only a terminated instance can be archived; terminate it first",
    )


@login_required
@require_GET
def archived_list(request: HttpRequest) -> HttpResponse:
    """Traces: archived instances, most recently archived first."""
    page = Paginator(selectors.archived_instances(), TRACES_PAGE_SIZE).get_page(request.GET.get("page"))
    return _render(request, TRACES, {"page": page, "instances": page.object_list})
