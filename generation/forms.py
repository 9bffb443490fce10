from dataclasses import replace
from typing import Any

from django import forms

from annotator.models import Campaign
from core.options import OptionError, options_form_clean, options_form_fields
from generation.run_config import RunConfig

# The options the page offers (every other one: `manage.py generate_pairs --help`), declared in RunConfig.
FORM_OPTIONS = (
    "model",
    "model_b",
    "backend",
    "base_url",
    "fill_campaign",
    "n",
    "temperatures",
    "top_p",
    "max_tokens",
    "seed",
)


class GenerationStartForm(forms.Form):
    """A campaign, a prompts file and the common options of a run, checked by RunConfig (one set of rules)."""

    campaign = forms.ModelChoiceField(queryset=Campaign.objects.real().order_by("name"))
    prompts = forms.FileField(required=False, label="Prompts file", help_text="JSONL or Parquet, one prompt per row.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(options_form_fields(RunConfig, FORM_OPTIONS))
        self.fields["model"].required = True
        self.config: RunConfig | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values = {name: cleaned.get(name) for name in FORM_OPTIONS}
        upload = cleaned.get("prompts")
        values["prompts_file"] = upload.name if upload else ""  # checked now; saved once the form is valid
        self.config = options_form_clean(self, RunConfig, values)
        if self.config is not None:
            try:
                self.config.server_check()  # a page's user does not hold the server's key
            except OptionError as error:
                for field, message in error.by_field():
                    self.add_error(field, message)
                self.config = None
        return cleaned

    def config_with_prompts(self, prompts_file: str) -> RunConfig:
        assert self.config is not None
        return replace(self.config, prompts_file=prompts_file)
