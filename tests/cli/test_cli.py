"""The CLI entry point: every subcommand is listed and has --help with examples, and a named
subcommand parses without importing the others (acquisition's clients cost every job ~0.2 s)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fmaprep.cli import SUBCOMMANDS, job_log_path, main


def test_top_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_help_shows_examples(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", name, "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_preprocess_does_not_import_the_acquisition_clients() -> None:
    code = (
        "import sys\n"
        "from fmaprep.cli import main\n"
        "try:\n    main(['preprocess', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('fmaprep.acquire', 'boto3'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_an_unknown_command_is_an_error_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bogus"])
    assert exit_info.value.code == 2
    assert "preprocess" in capsys.readouterr().err


def test_old_logs_of_ours_are_pruned_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    logs = tmp_path / "fmaprep-logs"
    logs.mkdir()
    month_ago = time.time() - 30 * 86400
    names = {
        "old": "preprocess-20261101T101010Z-4242.log",
        "recent": "preprocess-20261206T101010Z-4343.log",
        "foreign": "notes.log",  # old, but not a name fmaprep makes
        "near": "preprocess-20261101T101010Z-4242.log.bak",
    }
    for key, name in names.items():
        (logs / name).write_text(key)
        if key != "recent":
            os.utime(logs / name, (month_ago, month_ago))
    made = Path(job_log_path("preprocess"))
    assert made.parent == logs and re.fullmatch(r"preprocess-\d{8}T\d{6}Z-\d+\.log", made.name)
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        names[k] for k in ("recent", "foreign", "near")
    )
