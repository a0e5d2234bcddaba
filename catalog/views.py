"""The Settings pages: one tab per catalog table, searchable, editable in place with HTMX.

Every URL also works without JavaScript: a GET renders the whole page (with the row being edited shown as
its form), a POST redirects back to the tab. HTMX requests get only the fragment they swap.
"""

from dataclasses import dataclass

from django import forms as django_forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from catalog import forms
from catalog.machine_secrets import secret_sources, set_machine_secret
from catalog.models import (
    InstanceType,
    LlmModel,
    Provider,
    Region,
    RuntimeSetting,
    Zone,
)
from catalog.selectors import get_settings_row, launch_plans_for, search_settings_rows
from catalog.services import offered_zone_codes, set_active
from inventiv.pages import is_fragment, staff_required
from monitoring.audit import Source, Verb, action_type, record_change, stored_snapshot

PAGE = "catalog/settings.html"
# The id of the <tbody> the search box swaps; a request aimed at it gets only the rows.
ROWS_TARGET = "rows"


@dataclass(frozen=True)
class Tab:
    slug: str
    label: str
    model: type[Model]
    form: type[django_forms.BaseForm]
    create_form: type[django_forms.ModelForm] | None = None
    toggles: bool = True

    @property
    def noun(self) -> str:
        return self.model._meta.verbose_name

    @property
    def template(self) -> str:
        return f"catalog/tabs/{self.slug}.html"


TABS = [
    Tab("providers", "Providers", Provider, forms.ProviderForm),
    Tab("regions", "Regions", Region, forms.RegionForm),
    Tab("zones", "Zones", Zone, forms.ZoneForm, forms.ZoneCreateForm),
    Tab("instance-types", "Instance types", InstanceType, forms.InstanceTypeForm, forms.InstanceTypeCreateForm),
    Tab("models", "Models", LlmModel, forms.LlmModelForm, forms.LlmModelCreateForm),
    Tab("runtime", "Runtime settings", RuntimeSetting, forms.RuntimeSettingForm, toggles=False),
]
TABS_BY_SLUG = {tab.slug: tab for tab in TABS}


def get_tab(slug: str) -> Tab:
    if slug not in TABS_BY_SLUG:
        raise Http404(f"No settings tab {slug!r}")
    return TABS_BY_SLUG[slug]


def get_row(tab: Tab, pk: int) -> Model:
    row = get_settings_row(tab.model, pk=pk)
    if row is None:
        raise Http404(f"No {tab.model._meta.verbose_name} with id {pk}")
    return row


def posted(request: HttpRequest):
    """The submitted data of a POST, even an empty one (every zone unticked), else None (unbound form)."""
    return request.POST if request.method == "POST" else None


def save_form(form) -> bool:
    """Validate and save; a service's ValidationError lands on the form, next to the field it names."""
    if not form.is_valid():
        return False
    try:
        form.save()
    except ValidationError as exc:
        form.add_error(None, exc)
        return False
    return True


def audit_area(tab: Tab) -> str:
    return "SETTING" if tab.model is RuntimeSetting else "CATALOG"


def page_snapshot(obj: Model, *, zones: bool = False) -> dict | None:
    """What the audit row compares: the row as stored, or the zones an instance type is offered in."""
    return {"zones": offered_zone_codes(obj)} if zones else stored_snapshot(obj)


def save_audited(request: HttpRequest, tab: Tab, form, *, zones: bool = False) -> bool:
    """`save_form`, and the audit row of what it changed (source `page`), in one transaction."""
    obj = form.instance
    creating = obj.pk is None
    with transaction.atomic():
        before = None if creating else page_snapshot(obj, zones=zones)
        if not save_form(form):
            return False
        record_change(action_type(audit_area(tab), Verb.CREATE if creating else Verb.UPDATE), target=form.instance,
                      user=request.user, source=Source.PAGE, before=before,
                      after=page_snapshot(form.instance, zones=zones))
    return True


def render_tab(request: HttpRequest, tab: Tab, **extra) -> HttpResponse:
    """The tab as a whole page, as the panel a tab link swaps, or as the rows the search box swaps."""
    query = request.GET.get("q", "")
    context = {"tabs": TABS, "tab": tab, "q": query, "rows": search_settings_rows(tab.model, query=query), **extra}
    if tab.create_form and request.user.is_staff:
        context.setdefault("create_form", tab.create_form())
    if is_fragment(request):
        template = f"{tab.template}#rows" if request.htmx.target == ROWS_TARGET else f"{PAGE}#panel"
    else:
        template = PAGE
    response = render(request, template, context)
    # Caches must not hand the full page to HTMX or a fragment to a plain visit.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def render_row(request: HttpRequest, tab: Tab, row: Model, partial: str = "row", **extra) -> HttpResponse:
    """One row fragment for HTMX; without HTMX, the whole tab (showing the row's form when it has one)."""
    if not is_fragment(request):
        if partial == "row":
            return redirect("settings", tab.slug)
        return render_tab(request, tab, editing=row, **extra)
    return render(request, f"{tab.template}#{partial}", {"tab": tab, "obj": row, **extra})


@login_required
@require_GET
def settings_page(request: HttpRequest, tab: str = TABS[0].slug) -> HttpResponse:
    return render_tab(request, get_tab(tab))


@login_required
@require_GET
def row(request: HttpRequest, tab: str, pk: int) -> HttpResponse:
    """The read-only row (what Cancel swaps back in)."""
    tab = get_tab(tab)
    return render_row(request, tab, get_row(tab, pk))


@staff_required
def edit_row(request: HttpRequest, tab: str, pk: int) -> HttpResponse:
    tab = get_tab(tab)
    obj = get_row(tab, pk)
    form = tab.form(posted(request), instance=obj)
    if request.method == "POST" and save_audited(request, tab, form):
        return render_row(request, tab, get_row(tab, pk))
    return render_row(request, tab, obj, "form_row", form=form)


@staff_required
@require_POST
def toggle_row(request: HttpRequest, tab: str, pk: int) -> HttpResponse:
    tab = get_tab(tab)
    if not tab.toggles:
        raise Http404(f"{tab.label} have no active flag")
    obj = get_row(tab, pk)
    with transaction.atomic():
        if set_active(obj, active=not obj.active):
            record_change(action_type(audit_area(tab), Verb.UPDATE), target=obj, user=request.user,
                          source=Source.PAGE, before={"active": not obj.active}, after={"active": obj.active})
    return render_row(request, tab, obj)


@staff_required
def edit_zones(request: HttpRequest, pk: int) -> HttpResponse:
    """Which zones an instance type is offered in (checkboxes of its provider's zones)."""
    tab = TABS_BY_SLUG["instance-types"]
    obj = get_row(tab, pk)
    form = forms.InstanceTypeZonesForm(posted(request), instance=obj)
    if request.method == "POST" and save_audited(request, tab, form, zones=True):
        return render_row(request, tab, get_row(tab, pk))
    return render_row(request, tab, obj, "zones_row", zones_form=form)


@staff_required
@require_POST
def create_row(request: HttpRequest, tab: str) -> HttpResponse:
    tab = get_tab(tab)
    if tab.create_form is None:
        raise Http404(f"{tab.label} are not created here")
    form = tab.create_form(request.POST)
    if save_audited(request, tab, form):
        if not is_fragment(request):
            return redirect("settings", tab.slug)
        return render_tab(request, tab, created=form.instance)
    return render_tab(request, tab, create_form=form)


# The pool form names its (instance type, zone) selects `choices_0`, `choices_1`...: each is a type to plan.
POOL_CHOICE_PREFIX = "choices_"


@login_required
@require_GET
def launch_plan_panel(request: HttpRequest) -> HttpResponse:
    """The plan of the chosen model on each chosen instance type, as the create and pool forms show it
    before anything is rented. Takes `model` and `instance_type` (primary keys or codes) and pool choices."""
    refs = request.GET.getlist("instance_type") + [
        value for name, values in request.GET.lists() if name.startswith(POOL_CHOICE_PREFIX) for value in values
    ]
    model, plans = launch_plans_for(model_ref=request.GET.get("model", ""), type_refs=refs)
    unset = [name for name, _, source in secret_sources() if not source]
    return render(request, "catalog/_launch_plan.html", {"model": model, "plans": plans, "unset_secrets": unset})


@login_required
def machine_secrets(request: HttpRequest) -> HttpResponse:
    """Which machine secrets are set and where; staff set or clear one (its value is never shown again)."""
    error = ""
    if request.method == "POST":
        if not request.user.is_staff:
            raise PermissionDenied("This needs a staff account")
        try:
            set_machine_secret(request.POST.get("name", ""), value=request.POST.get("value", "").strip(),
                               actor=request.user, source=Source.PAGE)
        except ValueError as exc:
            error = str(exc)
        else:
            if not is_fragment(request):
                return redirect("settings", "runtime")
    template = "catalog/_machine_secrets.html" if is_fragment(request) else "catalog/machine_secrets.html"
    return render(request, template, {"secrets": secret_sources(), "error": error})
