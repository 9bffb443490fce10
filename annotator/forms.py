from django import forms

from annotator.models import DURATION_MS_MAX, RATIONALE_MAX_CHARS, Choice


class JudgmentForm(forms.Form):
    comparison = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    choice = forms.ChoiceField(choices=Choice.choices)
    rationale = forms.CharField(
        required=False, max_length=RATIONALE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    duration_ms = forms.IntegerField(required=False, min_value=0, max_value=DURATION_MS_MAX, widget=forms.HiddenInput)


class UndoForm(forms.Form):
    judgment = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
