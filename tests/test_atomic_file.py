"""fmaprep.atomic_file: a local file appears whole at its final name, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fmaprep.atomic_file import TMP_SUFFIX, atomic_path


def test_the_file_appears_only_when_the_block_ends(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "page.html"
    with atomic_path(final) as tmp:
        Path(tmp).write_text("whole")
        assert not final.exists()  # nothing at the final name while it is written
        assert os.path.dirname(tmp) == str(final.parent)  # same directory: the rename is atomic
        assert os.path.basename(tmp).startswith(".") and tmp.endswith(TMP_SUFFIX)  # hidden
    assert final.read_text() == "whole"
    assert os.listdir(final.parent) == ["page.html"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "out.wav"
    final.write_text("old")
    with pytest.raises(RuntimeError, match="encoder died"), atomic_path(final) as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("encoder died")
    assert final.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.wav"]


def test_a_writer_that_wrote_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "x"):
        pass
    assert os.listdir(tmp_path) == []
