"""Read queries over the catalog used by pages and APIs."""

from django.db.models import Count, F, Model, Prefetch, Q, QuerySet

from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, RuntimeSetting, Zone
from catalog.services import compatible_instance_types, launch_plan


def catalog_summary() -> dict[str, int]:
    return {
        "providers": Provider.objects.filter(active=True).count(),
        "regions": Region.objects.filter(active=True).count(),
        "zones": Zone.objects.filter(active=True).count(),
        "instance_types": InstanceType.objects.filter(active=True).count(),
        "models": LlmModel.objects.filter(active=True).count(),
    }


# --- Settings pages -------------------------------------------------------------------------

# What the Settings search box matches, per catalog table ("code or name", in each table's words).
SETTINGS_SEARCH_FIELDS: dict[type[Model], tuple[str, ...]] = {
    Provider: ("code", "name"),
    Region: ("code", "name", "provider__code"),
    Zone: ("code", "name", "region__code"),
    InstanceType: ("code", "name", "gpu_model"),
    LlmModel: ("code", "name"),
    RuntimeSetting: ("key", "description"),
}


def _settings_queryset(model: type[Model]) -> QuerySet:
    if model is Region:
        return Region.objects.select_related("provider").annotate(zone_count=Count("zones"))
    if model is Zone:
        return Zone.objects.select_related("region__provider").annotate(type_count=Count("instance_types"))
    if model is InstanceType:
        return InstanceType.objects.select_related("provider").prefetch_related(
            Prefetch("zones", queryset=Zone.objects.order_by("code"))
        )
    if model is Provider:
        return Provider.objects.annotate(region_count=Count("regions"))
    return model.objects.all()


def _with_compatible_types(rows: list) -> list:
    """Attach `compatible_types` (codes) to each LLM model row, as the compatibility rules compute them."""
    for row in rows:
        row.compatible_types = [t.code for t in compatible_instance_types(row).order_by("cost_per_hour", "code")]
    return rows


def search_settings_rows(model: type[Model], *, query: str = "") -> list:
    """The rows the Settings tab of `model` lists, filtered by `query` (case-insensitive, any search field)."""
    rows = _settings_queryset(model)
    query = query.strip()
    if query:
        match = Q()
        for field in SETTINGS_SEARCH_FIELDS[model]:
            match |= Q(**{f"{field}__icontains": query})
        rows = rows.filter(match)
    rows = list(rows)
    return _with_compatible_types(rows) if model is LlmModel else rows


def get_settings_row(model: type[Model], *, pk: int):
    """One row as its Settings tab shows it, or None when it does not exist."""
    row = _settings_queryset(model).filter(pk=pk).first()
    if row is not None and model is LlmModel:
        _with_compatible_types([row])
    return row


# --- API ------------------------------------------------------------------------------------


def with_zone_offers(types: QuerySet[InstanceType]) -> QuerySet[InstanceType]:
    """`types` with their provider and zone offers (zone and region included) loaded in two queries."""
    offers = InstanceTypeZone.objects.select_related("zone__region").order_by("zone__code")
    return types.select_related("provider").prefetch_related(Prefetch("zone_offers", queryset=offers))


def instance_types_with_offers() -> QuerySet[InstanceType]:
    """Every instance type with its zone offers loaded and `total_vram` (GPUs x VRAM per GPU) annotated."""
    return with_zone_offers(InstanceType.objects.annotate(total_vram=F("gpu_count") * F("vram_per_gpu_gb")))


# --- Launch plans shown beside forms -----------------------------------------------------------


# Longer than any code: not worth a query. Numbers of up to 18 digits always fit a 64-bit primary key.
MAX_REF_LENGTH = 200
MAX_PK_DIGITS = 18


def _by_pk_or_code(queryset: QuerySet, ref: str):
    """The row `ref` names: a primary key, an `<instance type pk>:<zone pk>` offer value, or a unique code."""
    ref = ref.split(":", 1)[0].strip()
    if not ref or "\x00" in ref or len(ref) > MAX_REF_LENGTH:
        return None
    if ref.isascii() and ref.isdigit():
        rows = list(queryset.filter(pk=int(ref))) if len(ref) <= MAX_PK_DIGITS else []
    else:
        rows = list(queryset.filter(code=ref)[:2])
    return rows[0] if len(rows) == 1 else None


def launch_plans_for(*, model_ref: str, type_refs: list[str]) -> tuple[LlmModel | None, list[tuple]]:
    """The model `model_ref` names and, for each instance type named, (type, plan or refusal)."""
    model = _by_pk_or_code(LlmModel.objects.all(), model_ref)
    types = InstanceType.objects.select_related("provider")
    plans = []
    for ref in dict.fromkeys(type_refs):
        instance_type = _by_pk_or_code(types, ref)
        if model is not None and instance_type is not None:
            plans.append((instance_type, launch_plan(model, instance_type)))
    return model, plans
