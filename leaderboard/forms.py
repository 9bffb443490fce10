from typing import Any

from django import forms

from annotator.models import Campaign
from core.options import options_form_clean, options_form_fields
from leaderboard.options import LeaderboardOptions


class LeaderboardForm(forms.Form):
    """Which campaign to rank (or all), and the options as fields derived from LeaderboardOptions, which checks
    them. Sent by GET: a leaderboard's address is its settings."""

    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.real().order_by("name"), required=False, empty_label="All campaigns"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(options_form_fields(LeaderboardOptions, LeaderboardOptions.option_names_in_order()))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values = {name: cleaned.get(name) for name in LeaderboardOptions.option_names()}
        self.options = options_form_clean(self, LeaderboardOptions, values)
        return cleaned
