import pytest

from core.errors import InputError
from exports.options import ExportOptions


def test_defaults_apply_for_missing_and_null_options():
    options = ExportOptions.from_mapping({"seed": None})
    assert options == ExportOptions()
    assert options.as_dict()["format"] == "auto"


def test_numbers_given_as_strings_are_accepted():
    options = ExportOptions.from_mapping({"val_fraction": "0.2", "seed": "7", "min_votes": "2"})
    assert (options.val_fraction, options.seed, options.min_votes) == (0.2, 7, 2)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"format": "csv"}, "format is 'csv': use one of auto, conversational, string, openai."),
        ({"judges": "robots"}, "judges is 'robots': use one of humans, ai, both."),
        ({"val_fraction": 1}, "val_fraction is 1.0: use a share in [0, 1)"),
        ({"val_fraction": "lots"}, "val_fraction is 'lots': use a number."),
        ({"min_votes": 0}, "min_votes is 0: use 1 or more."),
        ({"min_votes": 1.5}, "min_votes is 1.5: use a whole number."),
        ({"min_agreement": 1.5}, "min_agreement is 1.5: use a share in [0, 1]"),
        ({"max_length": 128}, "tokenizer and max_length go together"),
        ({"tokenizer": "some/path"}, "tokenizer and max_length go together"),
        ({"drop_overlong": True}, "drop_overlong needs tokenizer and max_length"),
        ({"drop_overlong": "yes"}, "drop_overlong is 'yes': use true or false."),
        ({"max_length": 0, "tokenizer": "t"}, "max_length is 0: use a positive number of tokens."),
        ({"out": "/etc"}, "Unknown option(s) out: use "),
    ],
)
def test_bad_options_are_refused_with_a_message_naming_them(given, message):
    with pytest.raises(InputError) as caught:
        ExportOptions.from_mapping(given)
    assert message in caught.value.message
