from typing import Any

from django import forms

from annotator.models import Campaign
from exports.options import FORMATS, JUDGES, ExportOptions

_DEFAULTS = ExportOptions()


class ExportForm(forms.Form):
    """The export options as HTML fields; their ranges are checked by ExportOptions (one set of rules)."""

    campaign = forms.ModelChoiceField(queryset=Campaign.objects.order_by("name"), empty_label=None)
    format = forms.ChoiceField(
        choices=[(f, f) for f in FORMATS],
        initial=_DEFAULTS.format,
        help_text="auto: conversational when any prompt has earlier turns or a system message, else string. "
        "openai: OpenAI preference JSONL.",
    )
    judges = forms.ChoiceField(
        choices=[(j, j) for j in JUDGES],
        initial=_DEFAULTS.judges,
        help_text="both: human votes, and AI votes for pairs no human judged.",
    )
    val_fraction = forms.FloatField(initial=_DEFAULTS.val_fraction, help_text="Share of prompts in validation.")
    seed = forms.IntegerField(initial=_DEFAULTS.seed, help_text="Seeds the split by prompt.")
    min_votes = forms.IntegerField(initial=_DEFAULTS.min_votes)
    min_agreement = forms.FloatField(initial=_DEFAULTS.min_agreement, help_text="0 to 1.")
    tokenizer = forms.CharField(required=False, help_text="Tokenizer directory on the server (optional).")
    max_length = forms.IntegerField(required=False, help_text="Token budget, with a tokenizer.")
    drop_overlong = forms.BooleanField(required=False, help_text="Drop the rows over max_length.")

    def options(self) -> dict[str, Any]:
        return {name: value for name, value in self.cleaned_data.items() if name != "campaign"}
