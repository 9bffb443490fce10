from typing import Any

from django import forms

from annotator.models import Campaign
from core.options import options_form_clean, options_form_fields
from exports.options import ExportOptions


class ExportForm(forms.Form):
    """The campaign, and the export options as HTML fields derived from ExportOptions, which checks them."""

    campaign = forms.ModelChoiceField(queryset=Campaign.objects.real().order_by("name"), empty_label=None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(options_form_fields(ExportOptions, ExportOptions.option_names_in_order()))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values = {name: cleaned.get(name) for name in ExportOptions.option_names()}
        self.export_options = options_form_clean(self, ExportOptions, values)
        return cleaned

    def options(self) -> dict[str, Any]:
        return self.export_options.as_dict()
