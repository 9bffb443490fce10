from django import forms

from core.models import JobStatus
from exports.models import DatasetExport
from training.config import DPORunConfig, default_value


def _help(name: str) -> str:
    return next(f.metadata["help"] for f in DPORunConfig.__dataclass_fields__.values() if f.name == name)


class TrainingRunForm(forms.Form):
    """The common options of a run; DPORunConfig checks them (one set of rules). The output directory is
    chosen by the server, under the data directory."""

    export = forms.ModelChoiceField(
        queryset=DatasetExport.objects.filter(status=JobStatus.SUCCEEDED).select_related("campaign"),
        empty_label=None,
        help_text="A finished export: its train file, and its validation file when it has one.",
    )
    model = forms.CharField(max_length=1000, help_text=_help("model"))
    n_epochs = forms.IntegerField(initial=default_value("n_epochs"), help_text=_help("n_epochs"))
    beta = forms.FloatField(initial=default_value("beta"), help_text=_help("beta"))
    batch_size = forms.IntegerField(initial=default_value("batch_size"), help_text=_help("batch_size"))
    learning_rate_multiplier = forms.FloatField(required=False, help_text=_help("learning_rate_multiplier"))
    learning_rate = forms.FloatField(required=False, help_text=_help("learning_rate"))
    max_length = forms.IntegerField(initial=default_value("max_length"), help_text=_help("max_length"))
    loss_type = forms.CharField(initial="sigmoid", help_text=_help("loss_type"))
    rpo_alpha = forms.FloatField(required=False, help_text=_help("rpo_alpha"))
    lora = forms.BooleanField(required=False, help_text=_help("lora"))
    merge = forms.BooleanField(required=False, help_text=_help("merge"))
    sft_epochs = forms.FloatField(initial=0, help_text=_help("sft_epochs"))
    max_steps = forms.IntegerField(required=False, help_text=_help("max_steps"))

    def config_values(self) -> dict:
        values = {name: value for name, value in self.cleaned_data.items() if name != "export" and value is not None}
        values["data"] = str(self.cleaned_data["export"].pk)
        return values
