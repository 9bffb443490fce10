"""Each comparison names its prompt's campaign, so the hand-out order's index can start with it."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def campaigns_fill(apps, schema_editor):
    Comparison = apps.get_model("annotator", "Comparison")
    Prompt = apps.get_model("annotator", "Prompt")
    Comparison.objects.update(
        campaign_id=Subquery(Prompt.objects.filter(pk=OuterRef("prompt_id")).values("campaign_id"))
    )


def campaign_field(*, null: bool) -> models.ForeignKey:
    return models.ForeignKey(
        editable=False,
        help_text="Its prompt's campaign, set from the prompt whenever the pair is saved or created in bulk: the "
        "hand-out order's index starts with it, so the next open pair is found without sorting the campaign's.",
        null=null,
        on_delete=django.db.models.deletion.CASCADE,
        related_name="+",
        to="annotator.campaign",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("annotator", "0011_comparison_handout_order"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="comparison", name="comparison_handout_order"),
        migrations.AddField(
            model_name="comparison",
            name="campaign",
            field=campaign_field(null=True),
        ),
        migrations.RunPython(campaigns_fill, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="comparison",
            name="campaign",
            field=campaign_field(null=False),
        ),
        migrations.AddIndex(
            model_name="comparison",
            index=models.Index(fields=["campaign", "-priority", "id"], name="comparison_handout_order"),
        ),
    ]
