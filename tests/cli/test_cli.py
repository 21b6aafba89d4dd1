"""The CLI entry point: every subcommand is listed and has --help with examples, and a named
subcommand parses without importing the others (acquisition's clients cost every job ~0.2 s)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fmaprep.cli import SUBCOMMANDS, main


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
