"""Readers check every part against what ``_SUCCESS`` recorded (bytes, record count) and name
the part and what is wrong. Parts are written by the independent SequenceFile writer of
test_records.py and by pyarrow; the commit is the JSON the job publishes."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_records import java_byte_array_array, write_sequence_file

from fmaprep.cli import export as export_cli
from fmaprep.formats.commit import Commit, Part
from fmaprep.formats.records import DamagedOutputError, read_records


def _record(i: int) -> dict[str, Any]:
    return {"track_id": f"{i:06d}", "source": f"/in/{i:06d}.mp3", "split": "train",
            "codes": np.full(100 + i, i, np.uint8)}  # fmt: skip


def _pickle_part(path: Path, n: int) -> bytes:
    """One SequenceFile record per track record (a cut after k of them is a record boundary)."""
    values = [java_byte_array_array([pickle.dumps([_record(i)], 5)]) for i in range(n)]
    write_sequence_file(path, values, sync_interval=1 << 30)
    return path.read_bytes()


def _commit(out: Path, parts: list[Part], fmt: str = "pickle") -> None:
    (out / "_SUCCESS").write_bytes(Commit("g1", fmt, tuple(parts), (), {}).to_bytes())


def test_a_part_cut_at_a_record_boundary_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    whole = _pickle_part(out / "part-00000", 5)
    four = _pickle_part(tmp_path / "four", 4)
    assert whole.startswith(four)  # four records are a byte prefix of five: a clean cut
    _commit(out, [Part("part-00000", len(whole), 5)])
    assert [r["track_id"] for r in read_records(str(out))] == [f"{i:06d}" for i in range(5)]
    (out / "part-00000").write_bytes(four)
    with pytest.raises(DamagedOutputError, match=rf"part-00000: {len(four)} bytes, but _SUCCESS "
                       rf"records {len(whole)} \(cut short"):  # fmt: skip
        list(read_records(str(out)))


def test_a_record_count_that_differs_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    whole = _pickle_part(out / "part-00000", 5)
    _commit(out, [Part("part-00000", len(whole), 6)])
    with pytest.raises(DamagedOutputError, match="part-00000: 5 records, but _SUCCESS records 6"):
        list(read_records(str(out), track_ids=["000001"]))  # (a filter counts no less)
    # excluded sources are not counted: 5 in the file, 1 superseded, 4 committed
    _commit(out, [Part("part-00000", len(whole), 4, ("/in/000002.mp3",))])
    assert len(list(read_records(str(out)))) == 4


def test_parquet_parts_are_checked_too(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    table = pa.table({"track_id": [f"{i:06d}" for i in range(5)],
                      "source": [f"/in/{i}" for i in range(5)],
                      "codes": [bytes([i]) * 10 for i in range(5)]})  # fmt: skip
    path = out / "part-00000-x.parquet"
    pq.write_table(table, path)
    size = path.stat().st_size
    _commit(out, [Part(path.name, size, 5)], "parquet")
    assert len(list(read_records(str(out)))) == 5
    _commit(out, [Part(path.name, size, 4)], "parquet")
    with pytest.raises(DamagedOutputError, match=r"x.parquet: 5 records, but _SUCCESS records 4"):
        list(read_records(str(out)))
    _commit(out, [Part(path.name, size + 7, 5)], "parquet")
    with pytest.raises(DamagedOutputError, match=rf"but _SUCCESS records {size + 7} \(cut short"):
        list(read_records(str(out)))


def test_export_says_which_part_is_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    whole = _pickle_part(out / "part-00000", 5)
    _commit(out, [Part("part-00000", len(whole), 5)])
    (out / "part-00000").write_bytes(_pickle_part(tmp_path / "four", 4))
    parser = argparse.ArgumentParser()
    export_cli.add_arguments(parser)
    assert export_cli.run(parser.parse_args([str(out), str(tmp_path / "mm")])) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmaprep export: ") and "part-00000" in err and err.count("\n") == 1
    assert not (tmp_path / "mm").exists()
