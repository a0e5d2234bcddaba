from django import forms
from django.contrib import admin

from autoscaling.models import Pool, PoolChoice, PoolSample
from autoscaling.pools import (
    DEFAULTS,
    SETTINGS,
    Choice,
    choice_errors,
    live_members,
    pool_errors,
    pool_log_metadata,
    pool_snapshot,
)
from monitoring.audit import AuditedAdmin, Verb

# What the autoscaler writes: shown, never edited here.
RUNTIME_FIELDS = [
    "desired_size", "last_reason", "last_decision_at", "policy_state", "held_requests", "held_at", "claimed_until",
    "created_at", "updated_at",
]


class PoolAdminForm(forms.ModelForm):
    """The settings rules of `autoscaling.pools` (the choices' rules are checked by the inline below)."""

    class Meta:
        model = Pool
        fields = ["name", "model", *SETTINGS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.initial.setdefault("min_size", DEFAULTS["min_size"])  # 0 would need scale_to_zero

    def clean(self):
        cleaned = super().clean()
        pool = self.instance if self.instance.pk is not None else None
        model = cleaned.get("model")
        errors = pool_errors(
            name=cleaned.get("name"), model=model, choices=[], pool=pool, check_choices=False,
            check_model=model is not None and (pool is None or model.pk != pool.model_id),
            settings={field: cleaned.get(field, getattr(self.instance, field)) for field in SETTINGS},
        )
        for field, messages in errors.items():
            if field not in self.errors:  # a field Django refused already keeps its own message
                self.add_error(field if field in self.fields else None, messages)
        return cleaned


class PoolChoiceFormSet(forms.BaseInlineFormSet):
    """The ordered choices, checked against the pool's model as the API and the dashboard check them."""

    def clean(self):
        super().clean()
        if any(self.errors) or self.instance.model_id is None:
            return  # the rows' own errors, or the pool's missing model, are reported already
        kept = [
            form.cleaned_data for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        kept.sort(key=lambda row: row["position"])
        messages = choice_errors(self.instance.model, [Choice(row["instance_type"], row["zone"]) for row in kept])
        if messages:
            raise forms.ValidationError(messages)


class PoolChoiceInline(admin.TabularInline):
    model = PoolChoice
    formset = PoolChoiceFormSet
    fields = ["position", "instance_type", "zone"]
    autocomplete_fields = ["instance_type", "zone"]
    extra = 1
    ordering = ["position"]


@admin.register(Pool)
class PoolAdmin(AuditedAdmin, admin.ModelAdmin):
    form = PoolAdminForm
    # Operator changes to a pool are SCALE_DECISION rows, as from the API and the Pools pages; its choices
    # (the inline) are part of the pool's snapshot.
    audit_inlines = False
    list_display = [
        "name", "model", "enabled", "min_size", "max_size", "desired_size", "last_reason", "last_decision_at"
    ]
    list_filter = ["enabled", "scale_to_zero", "model"]
    list_select_related = ["model"]
    search_fields = ["name", "model__code"]
    autocomplete_fields = ["model"]
    readonly_fields = RUNTIME_FIELDS
    inlines = [PoolChoiceInline]

    def get_readonly_fields(self, request, obj=None):
        # The name is in URLs and logs: it never changes once the pool exists.
        return [*RUNTIME_FIELDS, "name"] if obj is not None else RUNTIME_FIELDS

    def save_model(self, request, obj, form, change):
        if change:
            # Only what an operator owns: a tick deciding for the pool meanwhile keeps its own fields.
            obj.save(update_fields=["model", *SETTINGS, "updated_at"])
        else:
            obj.save()

    def audit_snapshot(self, obj):
        return pool_snapshot(obj)

    def audit_action_type(self, verb):
        return "SCALE_DECISION"

    def audit_metadata(self, request, obj, verb):
        change = {Verb.CREATE: "created", Verb.UPDATE: "updated", Verb.DELETE: "deleted"}[verb]
        return pool_log_metadata(obj, change=change, actor=request.user)

    def has_delete_permission(self, request, obj=None):
        # A pool with live members is not deleted (autoscaling.pools.delete_pool says why).
        return super().has_delete_permission(request, obj) and (obj is None or not live_members(obj).exists())


@admin.register(PoolSample)
class PoolSampleAdmin(admin.ModelAdmin):
    """One row per autoscaler tick; read-only."""

    list_display = ["at", "pool", "ready", "starting", "draining", "desired", "in_flight", "waiting", "held",
                    "ttft_p95_s", "kv_cache_usage", "reason"]
    list_filter = ["pool"]
    list_select_related = ["pool"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
