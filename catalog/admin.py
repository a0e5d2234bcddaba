from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from catalog import mock_cloud_admin  # noqa: F401  (registers the Mock cloud's models)
from catalog.models import InstanceType, InstanceTypeZone, LlmModel, Provider, Region, RuntimeSetting, Zone
from catalog.runtime_settings import parse_setting_value, update_setting
from catalog.services import offer_rejection_reason
from monitoring.audit import AuditedAdmin


class RegionInline(admin.TabularInline):
    model = Region
    fields = ["code", "name", "active"]
    extra = 0
    show_change_link = True


class ZoneInline(admin.TabularInline):
    model = Zone
    fields = ["code", "name", "active"]
    extra = 0
    show_change_link = True


class ZoneOfferFormSet(forms.BaseInlineFormSet):
    """Refuse a zone of another provider than the instance type's (as the API and services do)."""

    def clean(self):
        super().clean()
        if self.instance.provider_id is None:
            return  # the type's own form is missing its provider and says so
        for form in self.forms:
            zone = form.cleaned_data.get("zone") if hasattr(form, "cleaned_data") else None
            if zone is None or form.cleaned_data.get("DELETE"):
                continue
            reason = offer_rejection_reason(instance_type=self.instance, zone=zone)
            if reason:
                raise ValidationError(reason)


class ZoneOfferInline(admin.TabularInline):
    model = InstanceTypeZone
    formset = ZoneOfferFormSet
    fields = ["zone", "availability", "updated_at"]
    readonly_fields = ["updated_at"]
    autocomplete_fields = ["zone"]
    extra = 0


class ZoneOfferForm(forms.ModelForm):
    class Meta:
        model = InstanceTypeZone
        fields = ["instance_type", "zone", "availability"]

    def clean(self):
        cleaned = super().clean()
        instance_type, zone = cleaned.get("instance_type"), cleaned.get("zone")
        if instance_type and zone:
            reason = offer_rejection_reason(instance_type=instance_type, zone=zone)
            if reason:
                raise ValidationError({"zone": reason})
        return cleaned


@admin.register(Provider)
class ProviderAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "CATALOG"
    list_display = ["code", "name", "adapter", "active"]
    list_filter = ["adapter", "active"]
    search_fields = ["code", "name"]
    inlines = [RegionInline]


@admin.register(Region)
class RegionAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "CATALOG"
    list_display = ["code", "name", "provider", "active"]
    list_filter = ["provider", "active"]
    list_select_related = ["provider"]
    search_fields = ["code", "name", "provider__code"]
    autocomplete_fields = ["provider"]
    inlines = [ZoneInline]


@admin.register(Zone)
class ZoneAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "CATALOG"
    list_display = ["code", "name", "region", "provider_code", "active"]
    list_filter = ["region__provider", "region", "active"]
    list_select_related = ["region__provider"]
    search_fields = ["code", "name", "region__code", "region__provider__code"]
    autocomplete_fields = ["region"]

    @admin.display(description="provider", ordering="region__provider__code")
    def provider_code(self, zone):
        return zone.region.provider.code


@admin.register(InstanceType)
class InstanceTypeAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "CATALOG"
    list_display = [
        "code", "provider", "gpu_model", "gpu_count", "vram_per_gpu_gb", "total_vram", "cost_per_hour", "active"
    ]
    list_filter = ["provider", "active", "gpu_count", "gpu_model", "zones__region"]
    list_select_related = ["provider"]
    search_fields = ["code", "name", "gpu_model"]
    autocomplete_fields = ["provider"]
    inlines = [ZoneOfferInline]

    @admin.display(description="total VRAM (GB)")
    def total_vram(self, instance_type):
        return instance_type.total_vram_gb


@admin.register(InstanceTypeZone)
class InstanceTypeZoneAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "CATALOG"
    form = ZoneOfferForm
    list_display = ["instance_type", "zone", "availability", "updated_at"]
    list_filter = ["availability", "zone__region__provider", "zone"]
    list_select_related = ["instance_type", "zone"]
    search_fields = ["instance_type__code", "zone__code"]
    autocomplete_fields = ["instance_type", "zone"]


@admin.register(LlmModel)
class LlmModelAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "CATALOG"
    list_display = [
        "code", "task", "vram_required_gb", "context_length", "weights_gb", "gated", "mock_only", "allow_simulator",
        "active",
    ]
    list_filter = ["active", "task", "gated", "mock_only", "allow_simulator"]
    search_fields = ["code", "name"]


class RuntimeSettingForm(forms.ModelForm):
    """Check the value against the setting's type and bounds, as the API does."""

    class Meta:
        model = RuntimeSetting
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        # Fields shown read-only are not in the form: read them from the row.
        fields = ("value_type", "min_value", "max_value")
        spec = {field: cleaned.get(field, getattr(self.instance, field)) for field in fields}
        if cleaned.get("value") is not None and spec["value_type"]:
            try:
                parse_setting_value(raw=cleaned["value"], **spec)
            except ValidationError as refused:
                self.add_error("value", refused.message_dict["value"])
        return cleaned


@admin.register(RuntimeSetting)
class RuntimeSettingAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "SETTING"
    form = RuntimeSettingForm
    list_display = ["key", "value", "value_type", "default", "min_value", "max_value", "updated_at"]
    list_filter = ["value_type"]
    search_fields = ["key", "description"]
    readonly_fields = ["updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # Type, bounds and default come from the code (setting_specs); only the value is an operator's choice.
        if obj is not None:
            return ["key", "value_type", "default", "min_value", "max_value", "updated_at"]
        return super().get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        update_setting(obj, value=obj.value)  # stores the value in its canonical text ("true", "30")
