"""Forms of the Settings pages: in-place row edits, zone offers, runtime setting values, new rows.

Every edit form takes the row as `instance=` and has `save()`; a ValidationError raised by a service in
`save()` is shown on the form like any other field error (see `catalog.views.save_form`).
"""

from django import forms

from catalog.models import InstanceType, LlmModel, Provider, Region, RuntimeSetting, Zone
from catalog.runtime_settings import update_setting
from catalog.services import set_instance_type_zones

# Spec inputs are short numbers: a narrow widget keeps the edited row as wide as the read-only one.
NUMBER = forms.NumberInput(attrs={"class": "narrow"})


class RowFormMixin:
    """An in-place edit: its inputs sit in the row's cells, outside the <form> element (a form cannot wrap
    a table row), so each input names its form by id through the HTML `form` attribute. Ids carry the
    row, so two rows open for editing at once never share an input id."""

    def __init__(self, *args, instance, **kwargs):
        self.form_id = f"edit-{instance._meta.model_name}-{instance.pk}"
        if isinstance(self, forms.ModelForm):
            kwargs["instance"] = instance
        else:
            self.instance = instance
        super().__init__(*args, auto_id=f"{self.form_id}-%s", **kwargs)
        for name, field in self.fields.items():
            field.widget.attrs.update({"form": self.form_id, "aria-label": self[name].label})


class ProviderForm(RowFormMixin, forms.ModelForm):
    class Meta:
        model = Provider
        fields = ["name", "active"]


class RegionForm(RowFormMixin, forms.ModelForm):
    class Meta:
        model = Region
        fields = ["name", "active"]


class ZoneForm(RowFormMixin, forms.ModelForm):
    class Meta:
        model = Zone
        fields = ["name", "active"]


class InstanceTypeForm(RowFormMixin, forms.ModelForm):
    class Meta:
        model = InstanceType
        fields = ["name", "gpu_count", "vram_per_gpu_gb", "vcpu", "ram_gb", "cost_per_hour", "active"]
        labels = {"vram_per_gpu_gb": "VRAM per GPU (GB)", "ram_gb": "RAM (GB)", "cost_per_hour": "Price (EUR/h)"}
        widgets = {name: NUMBER for name in ["gpu_count", "vram_per_gpu_gb", "vcpu", "ram_gb", "cost_per_hour"]}


class LlmModelForm(RowFormMixin, forms.ModelForm):
    class Meta:
        model = LlmModel
        fields = ["name", "vram_required_gb", "context_length", "allow_simulator", "active"]
        labels = {"vram_required_gb": "VRAM required (GB)", "context_length": "Context length"}
        widgets = {"vram_required_gb": NUMBER, "context_length": NUMBER}


class RuntimeSettingForm(RowFormMixin, forms.Form):
    """A new value for a runtime setting; its type and bounds are checked by `update_setting`."""

    value = forms.CharField(max_length=RuntimeSetting._meta.get_field("value").max_length)

    def __init__(self, *args, instance: RuntimeSetting, **kwargs):
        super().__init__(*args, instance=instance, initial={"value": instance.value}, **kwargs)

    def save(self) -> RuntimeSetting:
        return update_setting(self.instance, value=self.cleaned_data["value"])


class InstanceTypeZonesForm(forms.Form):
    """The zones an instance type is offered in: one checkbox per zone of its provider.

    The field accepts any zone so that a zone of another provider reaches `set_instance_type_zones`,
    which refuses it with its own reason.
    """

    zones = forms.ModelMultipleChoiceField(queryset=Zone.objects.select_related("region__provider"), required=False)

    def __init__(self, *args, instance: InstanceType, **kwargs):
        super().__init__(*args, initial={"zones": [zone.pk for zone in instance.zones.all()]}, **kwargs)
        self.instance = instance

    @property
    def zone_choices(self) -> list[tuple[Zone, bool]]:
        """Each zone of the type's provider with whether its box is ticked (as posted, else as stored)."""
        ticked = {str(pk) for pk in self["zones"].value() or []}
        zones = Zone.objects.filter(region__provider=self.instance.provider_id).select_related("region")
        return [(zone, str(zone.pk) in ticked) for zone in zones.order_by("code")]

    def save(self) -> list[Zone]:
        return set_instance_type_zones(self.instance, zones=self.cleaned_data["zones"])


class ZoneCreateForm(forms.ModelForm):
    class Meta:
        model = Zone
        fields = ["region", "code", "name", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Region codes alone do not say which cloud they belong to.
        self.fields["region"].queryset = Region.objects.select_related("provider")
        self.fields["region"].label_from_instance = lambda region: f"{region.provider.name} · {region.name} ({region.code})"


class InstanceTypeCreateForm(forms.ModelForm):
    class Meta:
        model = InstanceType
        fields = [
            "provider", "code", "name", "gpu_model", "compute_capability", "gpu_count", "vram_per_gpu_gb", "vcpu",
            "ram_gb", "bandwidth_mbps", "cost_per_hour", "root_volumes", "engine_image", "active",
        ]  # fmt: skip
        labels = InstanceTypeForm.Meta.labels


class OptionalFactsMixin:
    """Launch facts may be left out of a new row: a blank one takes the column's default (0 for a shape
    figure), and the planner refuses a real model whose shape is missing, saying so."""

    optional_facts: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.optional_facts:
            self.fields[name].required = False

    def clean(self):
        cleaned = super().clean()
        for name in self.optional_facts:
            if cleaned.get(name) in (None, ""):
                cleaned[name] = self._meta.model._meta.get_field(name).get_default()
        return cleaned


class LlmModelCreateForm(OptionalFactsMixin, forms.ModelForm):
    optional_facts = ("task", "parameters_b", "weights_gb", "layers", "attention_heads", "kv_heads", "head_size")

    class Meta:
        model = LlmModel
        fields = [
            "code", "name", "task", "vram_required_gb", "context_length", "parameters_b", "weights_gb", "layers",
            "attention_heads", "kv_heads", "head_size", "gated", "mock_only", "allow_simulator", "active",
        ]  # fmt: skip
        labels = {**LlmModelForm.Meta.labels, "code": "Code (Hugging Face id)"}
