from typing import Any

from django import forms

from core.options import options_form_clean, options_form_fields
from rounds.options import SeriesOptions

# Every setting but the two prompts files, which the page takes as uploads.
FILES = {"prompts_file": "prompts", "eval_prompts_file": "eval_prompts"}
FORM_OPTIONS = [name for name in SeriesOptions.option_names_in_order() if name not in FILES]


class SeriesStartForm(forms.Form):
    """A series' name, its two prompts files and its settings, checked by SeriesOptions (one set of rules).

    The uploads are checked and saved by the view (generation's prompts_upload_save) before `options_for`."""

    name = forms.CharField(max_length=150, help_text="Names the series and its rounds' campaigns.")
    prompts = forms.FileField(label="Prompts file", help_text="JSONL or Parquet: the prompts every round samples.")
    eval_prompts = forms.FileField(
        label="Evaluation prompts file", help_text="JSONL or Parquet: held-out prompts for the blind evaluation."
    )
    run_now = forms.BooleanField(
        required=False,
        initial=True,
        label="Run the steps that need no people now",
        help_text="In the background, up to the first step where people label.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(options_form_fields(SeriesOptions, FORM_OPTIONS))
        self.fields["base_model"].required = True

    def options_for(self, *, prompts_file: str, eval_prompts_file: str) -> SeriesOptions | None:
        """The settings with the saved prompts files, or None with each problem on its field."""
        values = {name: self.cleaned_data.get(name) for name in FORM_OPTIONS}
        values.update(prompts_file=prompts_file, eval_prompts_file=eval_prompts_file)
        return options_form_clean(self, SeriesOptions, values)


class AdvanceForm(forms.Form):
    anyway = forms.BooleanField(required=False, help_text="Go on with what people judged so far.")
    chain = forms.BooleanField(required=False, help_text="Then go on with the next steps until one needs people.")
