"""Option sets declared once, as dataclasses whose fields document themselves (the way TRL declares
`DPOConfig`); the command line, config files, web forms and API input are all derived from, and checked by,
the same class.

    @dataclass(frozen=True)
    class ExportOptions(Options):
        val_fraction: float = option(0.1, "Expected share of prompts in the validation split, in [0, 1).")

        def problems(self) -> list[str]:
            return [f"`val_fraction` is {self.val_fraction}: use a share in [0, 1)."] if ... else []

- `Options.from_mapping(values)` turns values from any surface (argparse, a form, JSON, a YAML file) into a
  checked instance: unknown names, wrong types and choices, then the class's own `problems()`. Anything wrong
  is one OptionError listing every problem.
- Messages name options in backticks (`beta`); each surface words them in its own terms: `--beta` on the
  command line (`OptionError.worded(Surface.COMMAND_LINE)`), the field's label on a form, the plain name in
  the API.
- `options_add_arguments` derives the command line as transformers' HfArgumentParser does (one flag per field,
  help from the field, booleans as `--lora` / `--no-lora`), but with the flags and lists the project's commands
  always took: `--n-epochs` (not `--n_epochs`), `--temperatures 0.7,1.1` (not `--temperatures 0.7 1.1`).
- `options_form_fields` and `options_serializer` derive Django form fields and a DRF serializer (for the API
  schema); both validate through `from_mapping`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from core.errors import InputError, Surface

OptionsT = TypeVar("OptionsT", bound="Options")
_NAME = re.compile(r"`([a-z][a-z0-9_]*)`")


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    choices: Iterable[str] | None = None,
    flag: str | None = None,
    label: str | None = None,
    **extra: Any,
) -> Any:
    """A dataclass field with what every surface needs: its help text, its choices, the command-line flag when
    it is not the field's name (`--prompts` for `prompts_file`), the form label."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "flag": flag, "label": label, **extra}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------------------------------------
# Errors, worded per surface


class OptionError(InputError):
    """Bad options. Each problem names its options in backticks; `worded(surface)` says them in the surface's
    terms. `.message` (what the API and services show) uses the plain names."""

    def __init__(self, problems: list[str], *, options: type[Options], heading: str = "") -> None:
        self.problems, self.options, self.heading = problems, options, heading
        super().__init__(self.worded(Surface.API))

    def worded(self, surface: Surface) -> str:
        texts = [self.problem_worded(problem, surface) for problem in self.problems]
        if len(texts) == 1 and not self.heading:
            return texts[0]
        return f"{self.heading or 'Invalid options'}:\n  - " + "\n  - ".join(texts)

    def problem_worded(self, problem: str, surface: Surface) -> str:
        return _NAME.sub(lambda match: self.options.option_name(match.group(1), surface), problem)

    def by_field(self) -> list[tuple[str | None, str]]:
        """(the first option a problem names, or None, and the problem worded for a form)."""
        known = self.options.option_names()
        result = []
        for problem in self.problems:
            named = [name for name in _NAME.findall(problem) if name in known]
            result.append((named[0] if named else None, self.problem_worded(problem, Surface.FORM)))
        return result


# ---------------------------------------------------------------------------------------------------------
# The option set


class Options:
    """Base of an option set (a dataclass). Subclasses declare fields with `option()` and add their own rules in
    `problems()`, naming options in backticks."""

    options_heading: ClassVar[str] = ""  # "Invalid training configuration": heads a list of several problems

    def problems(self) -> list[str]:
        """What is wrong with these values together (ranges, options that need each other); [] when all is well."""
        return []

    def validate(self: OptionsT) -> OptionsT:
        problems = self.problems()
        if problems:
            raise OptionError(problems, options=type(self), heading=self.options_heading)
        return self

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_mapping(cls: type[OptionsT], data: Mapping[str, Any]) -> OptionsT:
        """Check and convert values from any surface (None: the default), then the class's rules."""
        known = cls.option_names()
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionError([f"Unknown option(s) {', '.join(unknown)}: use {', '.join(sorted(known))}."], options=cls)
        values, problems = {}, []
        for name, value in data.items():
            if value is None:
                continue
            try:
                values[name] = option_coerce(cls.option_field(name), value)
            except ValueError as error:
                problems.append(f"`{name}` is {value!r}: use {error}.")
        if problems:
            raise OptionError(problems, options=cls, heading=cls.options_heading)
        return cls(**values).validate()

    @classmethod
    def from_file(cls: type[OptionsT], path: str | Path, *, ignore: Iterable[str] = ()) -> dict[str, Any]:
        """The values a YAML or JSON config file gives (checked one by one; the rules run once merged with the
        other sources). Keys may use dashes (`n-epochs`); `ignore` lists keys written for the record only."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Config file {path}: no such file.")
        import yaml

        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        try:
            raw = json.loads(path.read_text(encoding="utf-8")) if kind == "JSON" else yaml.safe_load(path.read_text())
        except (ValueError, yaml.YAMLError) as error:
            raise InputError(f"Config file {path} is not valid {kind}: {error}") from None
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise InputError(f"Config file {path} must hold a mapping of option names to values.")
        raw = {str(key).replace("-", "_"): value for key, value in raw.items() if key not in set(ignore)}
        known = cls.option_names()
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(
                f"Config file {path}: unknown option(s) {', '.join(unknown)}. "
                f"Known options: {', '.join(sorted(known))}."
            )
        values = {}
        for name, value in raw.items():
            try:
                values[name] = None if value is None else option_coerce(cls.option_field(name), value, strict=True)
            except ValueError as error:
                raise InputError(f"Config file {path}: {name} must be {error}, not {value!r}.") from None
            if value is None and not option_type(cls.option_field(name))[1]:
                raise InputError(f"Config file {path}: {name} cannot be null.")
        return values

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def option_field(cls, name: str) -> dataclasses.Field:
        return next(f for f in cls.option_fields() if f.name == name)

    @classmethod
    def option_names(cls) -> set[str]:
        return {f.name for f in cls.option_fields()}

    @classmethod
    def option_names_in_order(cls) -> list[str]:
        return [f.name for f in cls.option_fields()]

    @classmethod
    def option_default(cls, name: str) -> Any:
        f = cls.option_field(name)
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    @classmethod
    def option_help(cls, name: str) -> str:
        return cls.option_field(name).metadata.get("help", "")

    @classmethod
    def option_name(cls, name: str, surface: Surface) -> str:
        """How a surface calls an option: `--max-tokens`, "Max tokens", `max_tokens`."""
        if name not in cls.option_names():
            return name
        metadata = cls.option_field(name).metadata
        if surface is Surface.COMMAND_LINE:
            return "--" + (metadata.get("flag") or name).replace("_", "-")
        if surface is Surface.FORM:
            return metadata.get("label") or name.replace("_", " ").capitalize()
        return name


# ---------------------------------------------------------------------------------------------------------
# Types


def option_type(f: dataclasses.Field) -> tuple[Any, bool]:
    """(the field's base type: bool, int, float, str or list[X]; whether it may be None)."""
    hint = f.type
    if isinstance(hint, str):
        hint = eval(hint, vars(typing), {})  # noqa: S307 (the module's own annotations, under `from __future__`)
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        optional = type(None) in args
        base = next(a for a in args if a is not type(None))
        return base, optional
    return hint, False


def option_coerce(f: dataclasses.Field, value: Any, *, strict: bool = False) -> Any:
    """The value as the field's type, or ValueError naming what to give instead ("a number"). Text is accepted
    for numbers and lists (comma-separated) unless `strict` (a config file, whose values have types already:
    only YAML's 5e-4, read as text, is forgiven)."""
    base, _ = option_type(f)
    if typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        items = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        if isinstance(items, list | tuple):
            try:
                return [option_coerce_one(item, x, strict=False) for x in items]
            except ValueError:
                pass
        plural = {float: "numbers", int: "whole numbers", str: "strings"}.get(item, _type_words(item))
        raise ValueError(f"a comma-separated list of {plural}")
    converted = option_coerce_one(base, value, strict=strict)
    choices = f.metadata.get("choices")
    if choices and converted not in choices:
        raise ValueError(f"one of {', '.join(choices)}")
    return converted


def option_coerce_one(base: Any, value: Any, *, strict: bool) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and strict:
            return int(value)
        if isinstance(value, str) and not strict:
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif base is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif base is str:
        if isinstance(value, str):
            return value.strip()
        if strict and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ValueError(_type_words(base))


def _type_words(base: Any) -> str:
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    return words.get(base, getattr(base, "__name__", str(base)))


# ---------------------------------------------------------------------------------------------------------
# The command line


def options_add_arguments(
    parser: argparse.ArgumentParser,
    cls: type[Options],
    *,
    exclude: Iterable[str] = (),
    required: Iterable[str] = (),
    title: str | None = None,
) -> None:
    """One flag per field, help from the field (with its default); every default None, so that the command
    knows what was given (and a config file can fill the rest)."""
    target = parser.add_argument_group(title) if title else parser
    required = set(required)
    own = set(vars(cls).get("__annotations__", {}))  # a subclass's own options first, then the inherited ones
    for f in sorted(cls.option_fields(), key=lambda f: f.name not in own):
        if f.name in set(exclude):
            continue
        name = f.metadata.get("flag") or f.name
        base, _ = option_type(f)
        flags = [f"--{name.replace('_', '-')}"]
        help_text = f.metadata.get("help", "")
        default = cls.option_default(f.name)
        if default not in (None, False, [], "") and "%(default)" not in help_text:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" Default: {shown}."
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if f.name in required:
            kwargs["required"] = True
        if base is bool:
            target.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(base) is list:
            target.add_argument(*flags, metavar="A,B", **kwargs)
        else:
            choices = f.metadata.get("choices")
            target.add_argument(*flags, choices=choices, type=None if choices else base, **kwargs)


def options_from_arguments(cls: type[OptionsT], parsed: Mapping[str, Any], **fixed: Any) -> dict[str, Any]:
    """The values of `cls` that the command line gave (not None), with `fixed` ones added."""
    names = cls.option_names()
    return {**{name: value for name, value in parsed.items() if name in names and value is not None}, **fixed}


# ---------------------------------------------------------------------------------------------------------
# Web forms and the API schema


def options_form_fields(cls: type[Options], names: Iterable[str]) -> dict[str, Any]:
    """Django form fields for the named options: types, labels, help and initial values from the fields.
    Only the shape is checked here; `from_mapping` checks the values (call `options_form_clean`)."""
    from django import forms

    fields: dict[str, Any] = {}
    for name in names:
        f = cls.option_field(name)
        base, _ = option_type(f)
        default = cls.option_default(name)
        common = {
            "label": f.metadata.get("label") or name.replace("_", " ").capitalize(),
            "help_text": f.metadata.get("help", ""),
            "required": False,
        }
        choices = f.metadata.get("choices")
        if base is bool:
            fields[name] = forms.BooleanField(initial=default, **common)
        elif choices and typing.get_origin(base) is not list:
            fields[name] = forms.ChoiceField(choices=[(c, c) for c in choices], initial=default, **common)
        elif base is int:
            fields[name] = forms.IntegerField(initial=default, **common)
        elif base is float:
            fields[name] = forms.FloatField(initial=default, **common)
        else:  # text, and lists written comma-separated
            initial = ",".join(map(str, default)) if isinstance(default, list) else default
            fields[name] = forms.CharField(initial=initial, **common)
    return fields


def options_form_clean(form: Any, cls: type[OptionsT], values: Mapping[str, Any]) -> OptionsT | None:
    """Check a form's option values with `cls`; attach each problem to the field it names. None if invalid.
    Empty text fields mean the default."""
    try:
        return cls.from_mapping({name: (None if value == "" else value) for name, value in values.items()})
    except OptionError as error:
        for field, message in error.by_field():
            form.add_error(field if field in form.fields else None, message)
        return None


def options_serializer(cls: type[Options], *, name: str | None = None) -> type:
    """A DRF serializer of the option set, for the API schema (the values are checked by `from_mapping`)."""
    from rest_framework import serializers

    declared: dict[str, Any] = {}
    for f in cls.option_fields():
        base, _ = option_type(f)
        default = cls.option_default(f.name)
        common = {"required": False, "help_text": f.metadata.get("help", "")}
        if default is not None:
            common["default"] = default
        else:
            common["allow_null"] = True
        choices = f.metadata.get("choices")
        if typing.get_origin(base) is list:
            item = typing.get_args(base)[0]
            child = serializers.FloatField() if item is float else serializers.CharField()
            declared[f.name] = serializers.ListField(child=child, **common)
        elif choices:
            declared[f.name] = serializers.ChoiceField(choices=choices, **common)
        elif base is bool:
            declared[f.name] = serializers.BooleanField(**common)
        elif base is int:
            declared[f.name] = serializers.IntegerField(**common)
        elif base is float:
            declared[f.name] = serializers.FloatField(**common)
        else:
            declared[f.name] = serializers.CharField(allow_blank=True, **common)
    return type(name or f"{cls.__name__}Serializer", (serializers.Serializer,), declared)
