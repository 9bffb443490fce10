"""Reads for exports: how a campaign's pairs were sampled, the export records and their files.

The reads of an export run itself (vote tallies and texts, in Arrow batches) are in `streams.py`.
"""

from dataclasses import dataclass
from pathlib import Path

from django.db.models import Count, Q, QuerySet

from annotator.models import Campaign, Comparison, Judgment, Prompt, PromptFormat
from core.checksums import file_sha256
from exports.formats import MIXED
from exports.models import DatasetExport


@dataclass(frozen=True)
class CampaignShape:
    pairs: int
    sampled: dict[str, int]  # pairs by how their two responses were sampled: a PromptFormat value, or MIXED

    def count(self, *sampled: str) -> int:
        return sum(self.sampled.get(key, 0) for key in sampled)


def campaign_shape(*, campaign: Campaign) -> CampaignShape:
    """How many pairs, and how their responses were sampled: what decides the export's format."""
    comparisons = Comparison.objects.filter(campaign=campaign)
    sampled: dict[str, int] = {}
    combinations = (
        comparisons.order_by()
        .values_list("candidate_a__prompt_format", "candidate_b__prompt_format")
        .annotate(n=Count("id"))
    )
    for format_a, format_b, n in combinations:
        key = format_a if format_a == format_b else MIXED
        sampled[key] = sampled.get(key, 0) + n
    return CampaignShape(pairs=sum(sampled.values()), sampled={key: n for key, n in sampled.items() if n})


def campaign_conversations(*, campaign: Campaign) -> int:
    """How many prompts of imported pairs are conversations (earlier turns or a system message), which a plain
    string cannot hold: what the string format checks."""
    imported = Prompt.objects.filter(
        campaign=campaign, comparisons__candidate_a__prompt_format=PromptFormat.UNKNOWN
    ).distinct()
    return imported.filter(Q(messages__1__isnull=False) | ~Q(system="")).count()


def campaign_edit_pairs_count(*, campaign: Campaign) -> int:
    """Pairs of the campaign with an annotator's edit on one side (annotator.services.candidate_edit_create)."""
    edited = Q(candidate_a__edited_from__isnull=False) | Q(candidate_b__edited_from__isnull=False)
    return Comparison.objects.filter(edited, campaign=campaign).count()


def campaign_ranked_pairs_count(*, campaign: Campaign) -> int:
    """Pairs of the campaign with at least one vote derived from a ranking (annotator.ranking)."""
    derived = Judgment.objects.filter(comparison__campaign=campaign, ranking__isnull=False)
    return derived.values("comparison_id").distinct().count()


def campaign_get(*, pk: int) -> Campaign | None:
    return Campaign.objects.filter(pk=pk).first()


def dataset_exports_list() -> QuerySet[DatasetExport]:
    return DatasetExport.objects.select_related("campaign", "created_by").order_by("-created_at", "-id")


@dataclass(frozen=True)
class ExportFile:
    """Where an export recorded one of its files, and whether it is still on disk as the export wrote it."""

    path: Path | None  # None: the export recorded no such file
    on_disk: bool
    intact: bool  # on disk with the size (when recorded) and the sha256 the export recorded


def dataset_export_file_check(*, export: DatasetExport, name: str) -> ExportFile:
    """The file `name` (train, validation or card) of an export, resolved from its record (a relative path is
    inside its out_dir) and checked against its checksum: a later export into the same directory replaces it,
    and a file can be edited or deleted by hand."""
    entry = export.files.get(name) if isinstance(export.files, dict) else None
    if not entry or not entry.get("path"):
        return ExportFile(path=None, on_disk=False, intact=False)
    path = Path(entry["path"])
    if not path.is_absolute() and export.out_dir:
        path = Path(export.out_dir) / path
    if not path.is_file():
        return ExportFile(path=path, on_disk=False, intact=False)
    size = entry.get("bytes")
    intact = (size is None or path.stat().st_size == size) and file_sha256(path) == entry.get("sha256")
    return ExportFile(path=path, on_disk=True, intact=intact)


def dataset_export_file(*, export: DatasetExport, name: str) -> Path | None:
    """The file `name` (train, validation or card) of a finished export, if it is still on disk as the export
    wrote it (a later export into the same directory replaces it: then its checksum no longer matches).

    Only paths the export recorded, inside its own out_dir, are ever served.
    """
    file = dataset_export_file_check(export=export, name=name)
    if file.path is None or file.path.parent != Path(export.out_dir) or not file.intact:
        return None
    return file.path
