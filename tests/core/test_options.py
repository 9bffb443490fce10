"""An option set declared once, and every surface derived from it: command line, config file, form, API."""

import argparse
from dataclasses import dataclass

import pytest
from django import forms

from core.errors import InputError, Surface
from core.options import (
    OptionError,
    Options,
    option,
    options_add_arguments,
    options_form_clean,
    options_form_fields,
    options_from_arguments,
    options_serializer,
)


@dataclass(frozen=True)
class Sampling(Options):
    max_tokens: int = option(256, "New tokens per response at most.")
    temperatures: list[float] = option(default_factory=lambda: [1.0], help="One, or one per candidate.")
    mode: str = option("all", "Which pairs.", choices=("all", "random"))
    greedy: bool = option(False, "Decode greedily.")
    prompts_file: str = option("", "Prompts to sample for.", flag="prompts", label="Prompts file")
    top_p: float | None = option(None, "Nucleus sampling.")

    def problems(self) -> list[str]:
        problems = []
        if self.max_tokens < 1:
            problems.append(f"`max_tokens` is {self.max_tokens}: use 1 or more.")
        if self.greedy and self.mode == "random":
            problems.append("`greedy` and `mode` random contradict each other: drop one.")
        return problems


def parse(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    options_add_arguments(parser, Sampling)
    return options_from_arguments(Sampling, vars(parser.parse_args(argv)))


def test_the_command_line_has_one_flag_per_field_and_reports_only_what_was_given():
    assert parse() == {}
    values = parse("--max-tokens", "64", "--temperatures", "0.7,1.1", "--mode", "random", "--prompts", "p")
    assert values == {"max_tokens": 64, "temperatures": "0.7,1.1", "mode": "random", "prompts_file": "p"}
    assert parse("--max-tokens", "8", "--greedy") == {"max_tokens": 8, "greedy": True}
    assert parse("--no-greedy") == {"greedy": False}
    assert Sampling.from_mapping(values) == Sampling(64, [0.7, 1.1], "random", False, "p")


def test_the_command_line_help_comes_from_the_fields_with_their_defaults():
    parser = argparse.ArgumentParser()
    options_add_arguments(parser, Sampling)
    text = parser.format_help()
    assert "New tokens per response at most. Default: 256." in text and "{all,random}" in text


def test_a_bad_value_names_the_option_in_each_surfaces_terms():
    with pytest.raises(OptionError) as caught:
        Sampling.from_mapping({"max_tokens": 0})
    error = caught.value
    assert error.message == "max_tokens is 0: use 1 or more."  # the API, services
    assert error.worded(Surface.COMMAND_LINE) == "--max-tokens is 0: use 1 or more."
    assert error.worded(Surface.FORM) == "Max tokens is 0: use 1 or more."
    with pytest.raises(OptionError) as caught:
        Sampling.from_mapping({"prompts_file": 3})
    assert caught.value.worded(Surface.COMMAND_LINE) == "--prompts is 3: use a string."


def test_types_choices_and_unknown_names_are_refused_together_with_every_problem():
    with pytest.raises(OptionError) as caught:
        Sampling.from_mapping({"max_tokens": "many", "mode": "some", "temperatures": "hot"})
    message = caught.value.message
    assert "max_tokens is 'many': use a whole number." in message
    assert "mode is 'some': use one of all, random." in message
    assert "temperatures is 'hot': use a comma-separated list of numbers." in message
    with pytest.raises(InputError, match=r"Unknown option\(s\) max_new_tokens: use greedy, max_tokens, mode"):
        Sampling.from_mapping({"max_new_tokens": 3})
    with pytest.raises(OptionError, match="use true or false"):
        Sampling.from_mapping({"greedy": "yes"})


def test_a_config_file_is_read_with_strict_types_and_dashes_allowed(tmp_path):
    path = tmp_path / "sampling.yaml"
    path.write_text("max-tokens: 32\ntemperatures: [0.5, 1]\ntop_p: 9e-1\nrecord: {ignored: true}\n")
    assert Sampling.from_file(path, ignore=["record"]) == {"max_tokens": 32, "temperatures": [0.5, 1.0], "top_p": 0.9}
    path.write_text("max_tokens: '32'\n")
    with pytest.raises(InputError, match="max_tokens must be a whole number, not '32'"):
        Sampling.from_file(path)
    path.write_text("max_tokens: null\n")
    with pytest.raises(InputError, match="max_tokens cannot be null"):
        Sampling.from_file(path)


class SamplingForm(forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(options_form_fields(Sampling, Sampling.option_names_in_order()))

    def clean(self):
        cleaned = super().clean()
        self.options = options_form_clean(self, Sampling, {name: cleaned.get(name) for name in Sampling.option_names()})
        return cleaned


def test_form_fields_carry_labels_help_and_defaults_and_problems_land_on_their_field():
    form = SamplingForm()
    assert form.fields["prompts_file"].label == "Prompts file"
    assert form.fields["max_tokens"].initial == 256 and form.fields["temperatures"].initial == "1.0"
    assert form.fields["mode"].choices == [("all", "all"), ("random", "random")]

    form = SamplingForm({"max_tokens": "0", "temperatures": "0.5", "mode": "random", "greedy": "on"})
    assert not form.is_valid()
    assert form.errors["max_tokens"] == ["Max tokens is 0: use 1 or more."]
    assert form.errors["greedy"] == ["Greedy and Mode random contradict each other: drop one."]

    form = SamplingForm({"max_tokens": "", "temperatures": "0.5,0.9", "mode": "all"})
    assert form.is_valid(), form.errors
    assert form.options == Sampling(temperatures=[0.5, 0.9])


def test_the_api_schema_serializer_has_the_fields_and_defaults():
    serializer = options_serializer(Sampling)()
    assert set(serializer.fields) == Sampling.option_names()
    assert serializer.fields["mode"].default == "all" and serializer.fields["top_p"].allow_null
