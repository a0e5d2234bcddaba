"""The Pools pages' form, for a new pool and for changing one. It only parses what was posted:
`autoscaling.pools` checks every rule, and its errors land next to the field they name."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from autoscaling.models import Pool
from autoscaling.pools import DEFAULTS, NAME_MAX_LENGTH, SETTINGS, Choice, create_pool, pool_choices, update_pool
from autoscaling.selectors import pool_offers
from catalog.models import LlmModel
from monitoring.audit import Source

# Choice selects on a new pool; a pool being edited gets one more than it has, so one can be added.
NEW_POOL_SLOTS = 3
LABELS = {
    "enabled": "Enabled",
    "min_size": "Min size",
    "max_size": "Max size",
    "target_in_flight": "Target in flight per instance",
    "ttft_p95_objective_s": "TTFT p95 objective (s)",
    "scale_up_window_s": "Scale-up window (s)",
    "scale_down_window_s": "Scale-down window (s)",
    "drain_timeout_s": "Drain timeout (s)",
    "scale_to_zero": "Scale to zero",
    "idle_period_s": "Idle period before zero (s)",
    "hold_timeout_s": "Hold timeout (s)",
    "hold_queue_size": "Hold queue size",
}


def offer_value(choice: Choice) -> str:
    return f"{choice.instance_type.pk}:{choice.zone.pk}"


class ChoicesField(forms.MultiValueField):
    """The pool's (instance type, zone) choices: one select per slot, first slot tried first. Blank slots
    are skipped; the list (of offer values) is checked by the pools service."""

    def __init__(self, *, options: list, slots: int, **kwargs):
        fields = [forms.ChoiceField(choices=options, required=False) for _ in range(slots)]
        widget = forms.MultiWidget([forms.Select(choices=options) for _ in range(slots)])
        super().__init__(fields, widget=widget, require_all_fields=False, required=False, **kwargs)

    def compress(self, data_list):
        return [value for value in data_list if value]


class PoolForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, help_text="Letters, digits, - and _; it cannot change later.")
    model = forms.ModelChoiceField(queryset=LlmModel.objects.none(), to_field_name="code", empty_label="choose a model")

    def __init__(self, data=None, *, pool: Pool | None = None):
        self.pool = pool
        current = pool_choices(pool) if pool is not None else []
        self.offers = {offer_value(Choice(offer.instance_type, offer.zone)): Choice(offer.instance_type, offer.zone)
                       for offer in pool_offers()}
        # A pool keeps its choices even once the catalog retires them, so editing it can show (and keep) them.
        self.offers.update({offer_value(choice): choice for choice in current})
        super().__init__(data, initial=self._initial(current))
        models = Q(active=True) if pool is None else Q(active=True) | Q(pk=pool.model_id)
        self.fields["model"].queryset = LlmModel.objects.filter(models).order_by("code")
        self.fields["choices"] = ChoicesField(
            options=self._options(), slots=max(NEW_POOL_SLOTS, len(current) + 1),
            label="Instance type and zone, in order of preference",
            help_text="The pool grows on the first choice, then the next when a choice runs out of capacity.",
        )
        self.fields.update(forms.fields_for_model(Pool, fields=SETTINGS, labels=LABELS))
        if pool is not None:
            del self.fields["name"]  # names a pool in URLs and logs: it never changes
            del self.fields["enabled"]  # the page's Enable/Disable button changes it, at once

    def _initial(self, current: list[Choice]) -> dict:
        if self.pool is None:
            return dict(DEFAULTS)
        return {
            **{field: getattr(self.pool, field) for field in SETTINGS},
            "model": self.pool.model.code,
            "choices": [offer_value(choice) for choice in current],
        }

    def _options(self) -> list:
        """Offers grouped by provider, as <optgroup>s: "MOCK-GPU-S in mock-eu-1 · 24 GB · €0.0000/h"."""
        groups: dict[str, list] = {}
        for value, (instance_type, zone) in self.offers.items():
            gpus = f"{instance_type.gpu_count} x {instance_type.vram_per_gpu_gb} GB"
            label = f"{instance_type.code} in {zone.code} · {gpus} · €{instance_type.cost_per_hour:.4f}/h"
            groups.setdefault(instance_type.provider.name, []).append((value, label))
        return [("", "—"), *groups.items()]

    def setting_fields(self) -> list[forms.BoundField]:
        return [self[field] for field in SETTINGS if field in self.fields]

    def choice_slots(self) -> list[tuple[int, str]]:
        """Each choice select, numbered from 1, rendered with the name and id MultiWidget gives it."""
        bound = self["choices"]
        values = bound.value() or []
        return [
            (number, select.render(f"{bound.html_name}_{i}", values[i] if i < len(values) else None,
                                   attrs={"id": f"{bound.auto_id}_{i}"}))
            for number, (i, select) in enumerate(enumerate(bound.field.widget.widgets), start=1)
        ]

    def chosen_choices(self) -> list[Choice]:
        return [self.offers[value] for value in self.cleaned_data.get("choices", [])]

    def save(self, *, actor=None) -> Pool | None:
        """Create or change the pool; None (with the service's errors on the form) when it refused."""
        data = self.cleaned_data
        settings = {field: data[field] for field in SETTINGS if field in self.fields}
        try:
            if self.pool is None:
                return create_pool(
                    name=data["name"], model=data["model"], choices=self.chosen_choices(), actor=actor,
                    source=Source.PAGE, **settings,
                )
            return update_pool(
                self.pool, model=data["model"], choices=self.chosen_choices(), actor=actor, source=Source.PAGE,
                **settings,
            )
        except ValidationError as refused:
            for field, messages in refused.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return None
