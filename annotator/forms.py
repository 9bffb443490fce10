from django import forms

from annotator.models import Choice


class JudgmentForm(forms.Form):
    comparison = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    choice = forms.ChoiceField(choices=Choice.choices)
    rationale = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    duration_ms = forms.IntegerField(required=False, min_value=0, max_value=24 * 3600 * 1000, widget=forms.HiddenInput)


class UndoForm(forms.Form):
    judgment = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
