"""Dashboard forms: creating an API key, and the filters of the request traces page."""

from django import forms
from django.db.models import QuerySet

from catalog.models import LlmModel
from router import selectors
from router.models import ApiKey, RequestTrace


def model_choices() -> list[tuple[str, str]]:
    return [(code, code) for code in LlmModel.objects.filter(active=True).values_list("code", flat=True)]


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=ApiKey._meta.get_field("name").max_length)
    requests_per_minute = forms.IntegerField(min_value=1, required=False, label="Requests / min")
    tokens_per_minute = forms.IntegerField(min_value=1, required=False, label="Tokens / min")
    allowed_models = forms.MultipleChoiceField(
        required=False, help_text="None selected: every model.", widget=forms.SelectMultiple(attrs={"size": 5})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allowed_models"].choices = model_choices()


class TraceFilterForm(forms.Form):
    """The traces page's filters; every one optional. Invalid values are dropped, not raised."""

    STREAM_CHOICES = [("", "any"), ("yes", "streamed"), ("no", "not streamed")]

    model = forms.ChoiceField(required=False)
    key = forms.ModelChoiceField(queryset=ApiKey.objects.all(), required=False, empty_label="any key")
    status = forms.IntegerField(required=False, min_value=100, max_value=599, label="Status code")
    outcome = forms.ChoiceField(choices=[("", "any outcome"), *RequestTrace.Outcome.choices], required=False)
    stream = forms.ChoiceField(choices=STREAM_CHOICES, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "any model"), *model_choices()]

    def traces(self) -> QuerySet[RequestTrace]:
        self.is_valid()  # cleaned_data keeps only the valid fields: a bad one is ignored, its error shown
        data = self.cleaned_data
        traces = selectors.request_traces(
            model=data.get("model") or None,
            api_key_id=data["key"].pk if data.get("key") else None,
            status_code=data.get("status"),
            outcome=data.get("outcome") or None,
        )
        if data.get("stream"):
            traces = traces.filter(stream=data["stream"] == "yes")
        return traces
