import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.models import JobStatus
from exports.models import DatasetExport
from tests.exports.helpers import judge_all, read_rows
from tests.factories import make_campaign, make_user, shared_database_url

ROOT = Path(__file__).resolve().parents[2]


def export(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("export_preferences", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_command_writes_train_validation_and_card_and_prints_what_it_did(tmp_path):
    campaign = make_campaign("Cmd", pairs=30, sampled="text")
    ids = sorted(campaign.prompts.values_list("comparisons", flat=True))
    judge_all(campaign, make_user("ann"), lambda c: "tie" if c.pk == ids[0] else "b")
    make_user("boss", staff=True)
    output = export("--campaign", "Cmd", "--out", str(tmp_path), "--val-fraction", "0.3", "--user", "boss")
    assert sorted(os.listdir(tmp_path)) == [
        ".preference-studio-export",
        "README.md",
        "train.parquet",
        "validation.parquet",
    ]
    record = DatasetExport.objects.get()
    assert record.created_by.username == "boss"
    assert record.out_dir == str(tmp_path.resolve())
    rows = record.stats["rows"]
    assert f"Export {record.pk} of campaign 'Cmd' (string): 29 row(s), train {rows['train']}" in output
    assert "Format string, chosen by auto from how the responses were sampled. 30 pair(s) were sampled as raw" in output
    assert "dropped 1 pair(s) that were judged a tie" in output
    assert f"train.parquet  {rows['train']} rows  sha256 {record.files['train']['sha256']}" in output
    assert len(read_rows(tmp_path)) == 29


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--campaign", "Nope"], "No campaign named 'Nope'. Campaigns: 'Cmd'."),
        (["--campaign", "Cmd", "--val-fraction", "1.5"], "--val-fraction is 1.5: use a share in [0, 1)"),
        (["--campaign", "Cmd", "--max-length", "100"], "--tokenizer and --max-length go together"),
        (["--campaign", "Cmd", "--user", "ghost"], "No user named 'ghost' (--user)."),
        (["--campaign", "Cmd"], "Nothing to export from campaign 'Cmd' with judges=humans: of its 2 pair(s), 2 have"),
    ],
)
def test_bad_options_and_empty_exports_stop_the_command_with_a_clear_error(tmp_path, args, message):
    make_campaign("Cmd", pairs=2)
    with pytest.raises(CommandError) as caught:
        export(*args, "--out", str(tmp_path / "out"))
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def start_interruptible_export(campaign: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": shared_database_url()}
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/exports/interruptible_export.py"),
            "--campaign",
            campaign,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_temporary_file(process: subprocess.Popen, out: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and any(name.startswith(".train.parquet.tmp-") for name in os.listdir(out)):
            return
        if process.poll() is not None:
            raise AssertionError(f"the export ended before it was interrupted: {process.stderr.read().decode()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no temporary file appeared")


@pytest.mark.django_db(transaction=True)
def test_sigterm_midway_leaves_no_file_and_marks_the_export_failed(tmp_path):
    campaign = make_campaign("Killed", pairs=40)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    process = start_interruptible_export("Killed", tmp_path)
    wait_for_temporary_file(process, tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == []
    record = DatasetExport.objects.get()
    assert record.status == JobStatus.FAILED
    assert record.error == "The export was interrupted (Ctrl-C or SIGTERM); no file was written."


@pytest.mark.django_db
def test_an_output_directory_holding_other_files_is_refused_before_anything_is_written(tmp_path):
    campaign = make_campaign("Careful", pairs=3)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    (tmp_path / "README.md").write_text("my project's readme")
    with pytest.raises(CommandError, match="already holds files that no export wrote"):
        export("--campaign", "Careful", "--out", str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["README.md"]
    assert (tmp_path / "README.md").read_text() == "my project's readme"


@pytest.mark.django_db(transaction=True)
def test_after_a_sigkill_no_final_file_exists_and_the_next_export_sweeps_the_leftovers(tmp_path):
    campaign = make_campaign("Killed hard", pairs=40)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    process = start_interruptible_export("Killed hard", tmp_path)
    wait_for_temporary_file(process, tmp_path)
    process.kill()
    process.wait(timeout=60)
    assert os.listdir(tmp_path)
    assert all(name.startswith(".") and ".tmp-" in name for name in os.listdir(tmp_path))
    export("--campaign", "Killed hard", "--out", str(tmp_path), "--val-fraction", "0")
    assert sorted(os.listdir(tmp_path)) == [".preference-studio-export", "README.md", "train.parquet"]
