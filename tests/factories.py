"""Small builders for test data, through the same services the product uses."""

from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.forms.models import model_to_dict

from annotator.models import Campaign, Comparison, PromptFormat
from annotator.services import campaign_create, candidate_create, comparison_create, prompt_get_or_create
from llm.base import completion_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HUMAN_PREFERENCES = SHARED / "data" / "human-preferences.jsonl"
TINY_MODEL = SHARED / "models" / "stories260K"


def make_user(username: str, *, staff: bool = False, password: str = "pw-for-tests") -> AbstractBaseUser:
    return get_user_model().objects.create_user(
        username=username, password=password, is_staff=staff, is_superuser=staff
    )


def make_campaign(
    name: str = "Campaign", *, pairs: int = 3, overlap: int = 1, sampled: str = PromptFormat.UNKNOWN, **options
) -> Campaign:
    campaign = campaign_create(name=name, overlap=overlap, **options)
    for i in range(pairs):
        add_pair(campaign, f"Question {i}?", f"Answer A{i}", f"Answer B{i}", sampled=sampled)
    return campaign


def add_pair(
    campaign: Campaign,
    prompt: str | list,
    text_a: str,
    text_b: str,
    *,
    sampled: str = PromptFormat.UNKNOWN,
    **prompt_options,
) -> Comparison:
    """A pair whose responses were sampled `sampled`: through the chat template ("chat"), as raw completions of
    the plain prompt ("text", recorded as an engine without a chat template sends it), or unknown ("")."""
    prompt_obj, _ = prompt_get_or_create(campaign=campaign, prompt=prompt, **prompt_options)
    seen = {"prompt_format": sampled}
    if sampled == PromptFormat.TEXT:
        seen["prompt_text"] = completion_text(prompt_obj.messages, prompt_obj.system)
    a = candidate_create(prompt=prompt_obj, text=text_a, model_name="model-a", backend="test", **seen)
    b = candidate_create(prompt=prompt_obj, text=text_b, model_name="model-b", backend="test", **seen)
    return comparison_create(candidate_a=a, candidate_b=b)


def shared_database_url() -> str:
    """The URL of the database this test runs on, for a subprocess to share it (SQLite or PostgreSQL)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'])}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def campaign_admin_form(campaign, **changes):
    """The admin's change form for the campaign as it is, with `changes`, as a browser posts it."""
    form = {}
    for name, value in {**model_to_dict(campaign), **changes}.items():
        if isinstance(value, bool):
            if value:
                form[name] = "on"
        elif value is None:
            form[name] = ""
        elif isinstance(value, list):
            form[name] = [getattr(item, "pk", item) for item in value]
        else:
            form[name] = value
    return form
