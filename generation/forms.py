from django import forms

from annotator.models import Campaign
from llm.base import BACKENDS


class FloatListField(forms.CharField):
    """Comma-separated numbers: "0.7,1.1"."""

    def to_python(self, value: str | None) -> list[float]:
        text = super().to_python(value)
        try:
            return [float(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise forms.ValidationError(f"{text!r} is not a comma-separated list of numbers.") from None


class GenerationStartForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.order_by("name"))
    model = forms.CharField(max_length=500, help_text="Model folder on the server, or a Hugging Face id.")
    model_b = forms.CharField(
        max_length=500, required=False, label="Second model", help_text="Optional: every pair is one answer of each."
    )
    backend = forms.ChoiceField(choices=[(b, b) for b in BACKENDS], initial="vllm")
    base_url = forms.CharField(
        max_length=500, required=False, label="Server URL", help_text="openai backend: the server's /v1 URL."
    )
    prompts = forms.FileField(required=False, label="Prompts file", help_text="JSONL or Parquet, one prompt per row.")
    fill_campaign = forms.BooleanField(
        required=False, help_text="Also generate for the campaign's prompts that have no comparisons yet."
    )
    n = forms.IntegerField(min_value=2, initial=2, label="Candidates per prompt")
    temperatures = FloatListField(initial="1.0", help_text="One value, or one per candidate: 0.7,1.1")
    top_p = FloatListField(initial="1.0", label="Top-p")
    max_tokens = forms.IntegerField(min_value=1, initial=256)
    seed = forms.IntegerField(min_value=0, initial=0)
