from django import forms

from annotator.models import DURATION_MS_MAX, RATIONALE_MAX_CHARS, Choice, Strength

# A side with how much better it is, as one button's value: "left:clearly" (campaigns that ask for strength).
PICKS = [(choice.value, choice.label) for choice in Choice] + [
    (f"{side.value}:{strength.value}", f"{side.label}: {strength.label.lower()}")
    for side in (Choice.LEFT, Choice.RIGHT)
    for strength in Strength
]


class JudgmentForm(forms.Form):
    """What a button of the comparison page posts: the pair, and `choice`, a Choice or "side:strength"."""

    comparison = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    choice = forms.ChoiceField(choices=PICKS)
    rationale = forms.CharField(
        required=False, max_length=RATIONALE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    duration_ms = forms.IntegerField(required=False, min_value=0, max_value=DURATION_MS_MAX, widget=forms.HiddenInput)
    edited_text = forms.CharField(required=False, widget=forms.Textarea)  # checked by judgment_submit

    def clean(self) -> dict:
        cleaned = super().clean()
        if "choice" in cleaned:
            cleaned["choice"], _, cleaned["strength"] = cleaned["choice"].partition(":")
        return cleaned


class UndoForm(forms.Form):
    judgment = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
