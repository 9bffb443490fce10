from django import forms

from annotator.models import DURATION_MS_MAX, RATIONALE_MAX_CHARS, Choice, Strength

# A side with how much better it is, as one button's value: "left:clearly" (campaigns that ask for strength).
PICKS = [(choice.value, choice.label) for choice in Choice] + [
    (f"{side.value}:{strength.value}", f"{side.label}: {strength.label.lower()}")
    for side in (Choice.LEFT, Choice.RIGHT)
    for strength in Strength
]


class JudgmentForm(forms.Form):
    """What a button of the comparison page posts: the pair, and `choice`, a Choice or "side:strength"."""

    comparison = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    choice = forms.ChoiceField(choices=PICKS)
    rationale = forms.CharField(
        required=False, max_length=RATIONALE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    duration_ms = forms.IntegerField(required=False, min_value=0, max_value=DURATION_MS_MAX, widget=forms.HiddenInput)
    edited_text = forms.CharField(required=False, widget=forms.Textarea)  # checked by judgment_submit

    def clean(self) -> dict:
        cleaned = super().clean()
        if "choice" in cleaned:
            cleaned["choice"], _, cleaned["strength"] = cleaned["choice"].partition(":")
        return cleaned


class RankingForm(forms.Form):
    """What the ranking form posts: the anchor pair, and `rank_<candidate id>` = 1..n for each response shown."""

    comparison = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    duration_ms = forms.IntegerField(required=False, min_value=0, max_value=DURATION_MS_MAX, widget=forms.HiddenInput)

    def clean(self) -> dict:
        cleaned = super().clean()
        ranks: dict[int, int] = {}
        for key, value in self.data.items():
            if not key.startswith("rank_"):
                continue
            try:
                ranks[int(key.removeprefix("rank_"))] = int(value)
            except ValueError:
                raise forms.ValidationError(f"{key} is {value!r}: a rank is a whole number, 1 for the best.") from None
        if len(ranks) < 3:
            raise forms.ValidationError("A ranking orders three responses or more: rank each one shown.")
        given = sorted(ranks.values())
        if given != list(range(1, len(ranks) + 1)):
            twice = sorted({r for r in given if given.count(r) > 1})
            raise forms.ValidationError(
                f"Give each of the {len(ranks)} responses its own rank, 1 (best) to {len(ranks)}"
                + (f": rank {', '.join(map(str, twice))} was given twice." if twice else ".")
            )
        cleaned["order"] = [pk for pk, _ in sorted(ranks.items(), key=lambda item: item[1])]
        return cleaned


class UndoForm(forms.Form):
    judgment = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
