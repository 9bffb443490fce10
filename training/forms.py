from typing import Any

from django import forms

from core.models import JobStatus
from core.options import options_form_clean, options_form_fields
from exports.models import DatasetExport
from training.config import DPORunConfig

# The options the page offers (every other one: `manage.py train_dpo --help`), declared in DPORunConfig.
FORM_OPTIONS = (
    "model",
    "n_epochs",
    "beta",
    "batch_size",
    "learning_rate_multiplier",
    "learning_rate",
    "max_length",
    "loss_type",
    "rpo_alpha",
    "lora",
    "merge",
    "sft_epochs",
    "max_steps",
)


class TrainingRunForm(forms.Form):
    """A finished export and the common options of a run, checked by DPORunConfig (one set of rules). The output
    directory is chosen by the server, under the data directory."""

    export = forms.ModelChoiceField(
        queryset=DatasetExport.objects.filter(status=JobStatus.SUCCEEDED).select_related("campaign"),
        empty_label=None,
        help_text="A finished export: its train file, and its validation file when it has one.",
    )

    def __init__(self, *args: Any, output: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(options_form_fields(DPORunConfig, FORM_OPTIONS))
        self.fields["model"].required = True
        self.output = output
        self.config: DPORunConfig | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "export" in cleaned:
            values = {name: cleaned.get(name) for name in FORM_OPTIONS}
            values.update(data=str(cleaned["export"].pk), output=self.output)
            self.config = options_form_clean(self, DPORunConfig, values)
        return cleaned
