"""train.export (memmap) and the parquet/pickle formats: every layout holds the same codes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.cli import main
from fmaprep.formats.records import read_records
from fmaprep.train.export import CODES_FILE, INDEX_FILE, export_memmap

from conftest import write_parquet_output


def records_by_id(output: Path, **filters: Any) -> dict[str, dict[str, Any]]:
    return {r["track_id"]: r for r in read_records(str(output), **filters)}


def read_export(dest: Path) -> tuple[np.ndarray, list[dict[str, Any]]]:
    codes = np.fromfile(dest / CODES_FILE, dtype=np.uint8)
    index = [json.loads(line) for line in (dest / INDEX_FILE).read_text().splitlines()]
    return codes, index


def assert_export_equals_records(dest: Path, records: dict[str, dict[str, Any]]) -> None:
    codes, index = read_export(dest)
    assert sorted(line["track_id"] for line in index) == sorted(records)
    end = 0
    for line in index:  # contiguous, in order, each slice the record's codes
        assert line["offset"] == end
        end += line["length"]
        record = records[line["track_id"]]
        np.testing.assert_array_equal(codes[line["offset"] : end], record["codes"])
        meta = {k: v for k, v in line.items() if k not in ("offset", "length")}
        assert meta == {k: v for k, v in record.items() if k != "codes"}
    assert end == codes.size


# --- real outputs of the job (slow: Spark) -----------------------------------------------------


@pytest.mark.slow
def test_pickle_and_parquet_outputs_hold_the_same_records(job_outputs: dict[str, Path]) -> None:
    pickled, parquet = records_by_id(job_outputs["pickle"]), records_by_id(job_outputs["parquet"])
    assert len(pickled) == 6 and pickled.keys() == parquet.keys()
    for tid, a in pickled.items():
        b = parquet[tid]
        assert b["codes"].dtype == np.uint8 and b["codes"].ndim == 1
        np.testing.assert_array_equal(a["codes"], b["codes"])
        assert {k: v for k, v in a.items() if k != "codes"} == {
            k: v for k, v in b.items() if k != "codes"
        }
    assert "genre" not in pickled["000205"] and pickled["000201"]["genre"] == "Jazz"
    names = os.listdir(job_outputs["parquet"])
    assert {"_SUCCESS", "_manifest.jsonl", "_stats.json"} <= set(names)
    parts = [n for n in names if n.startswith("part-")]
    assert parts and all(n.endswith(".parquet") for n in parts)
    assert not [n for n in names if n.startswith(".")]  # no staging or .crc leftovers
    stats = json.loads((job_outputs["parquet"] / "_stats.json").read_text())
    assert stats["config"]["job"]["format"] == "parquet" and stats["ok"] == 6


@pytest.mark.slow
def test_parquet_rows_are_spark_readable_with_the_documented_columns(
    spark: Any, job_outputs: dict[str, Path]
) -> None:
    frame = spark.read.parquet(f"file://{job_outputs['parquet']}")
    assert dict(frame.dtypes)["codes"] == "binary" and dict(frame.dtypes)["sample_rate"] == "int"
    rows = {row["track_id"]: row for row in frame.collect()}
    for tid, record in records_by_id(job_outputs["pickle"]).items():
        assert bytes(rows[tid]["codes"]) == record["codes"].tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pickle", "parquet"])
def test_filters_agree_across_formats(job_outputs: dict[str, Path], fmt: str) -> None:
    out = job_outputs[fmt]
    assert sorted(records_by_id(out, genres=["Rock"])) == ["000200", "000203"]
    assert sorted(records_by_id(out, splits="valid")) == ["000201", "000203"]
    assert sorted(records_by_id(out, track_ids=["000204", "x"], splits=["train"])) == ["000204"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pickle", "parquet"])
def test_memmap_export_equals_the_records(
    job_outputs: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    dest = tmp_path / "mm"
    assert main(["-q", "export", str(job_outputs[fmt]), str(dest), "--to", "memmap"]) == 0
    assert_export_equals_records(dest, records_by_id(job_outputs["pickle"]))
    # a numpy.memmap window is a slice of the record
    index = [json.loads(line) for line in (dest / INDEX_FILE).read_text().splitlines()]
    mm = np.memmap(dest / CODES_FILE, dtype=np.uint8, mode="r")
    line = index[2]
    record = records_by_id(job_outputs["pickle"], track_ids=[line["track_id"]])[line["track_id"]]
    np.testing.assert_array_equal(
        mm[line["offset"] + 100 : line["offset"] + 612], record["codes"][100:612]
    )


# --- export behaviour on small hand-made outputs (fast) ---------------------------------------


def small_records(lengths: list[int], seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "track_id": f"{i:06d}",
            "source": f"/m/{i:06d}.mp3",
            "sample_rate": 8000,
            "mu": 255,
            "genre": ("Rock", "Jazz")[i % 2],
            "codes": rng.integers(0, 256, n).astype(np.uint8),
        }
        for i, n in enumerate(lengths)
    ]


def test_export_streams_empty_tracks_and_filters(tmp_path: Path) -> None:
    records = small_records([5, 0, 7, 3])
    out = write_parquet_output(tmp_path / "o", [records[:2], records[2:]])
    result = export_memmap(str(out), str(tmp_path / "all"))
    assert (result.tracks, result.samples) == (4, 15)
    assert_export_equals_records(tmp_path / "all", {r["track_id"]: r for r in records})
    export_memmap(str(out), str(tmp_path / "jazz"), genres=["Jazz"])
    assert_export_equals_records(
        tmp_path / "jazz", {r["track_id"]: r for r in records if r["genre"] == "Jazz"}
    )


def test_export_is_atomic_and_refuses_to_clobber(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = write_parquet_output(tmp_path / "o", [small_records([4, 4])])
    dest = tmp_path / "mm"
    export_memmap(str(out), str(dest))
    before = read_export(dest)[0].tobytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_memmap(str(out), str(dest))

    # a failure half-way leaves DEST as it was and no staging directory behind
    import fmaprep.formats.records

    def broken(*args: Any, **kwargs: Any) -> Any:
        yield from small_records([3])
        raise ValueError("disk on fire")

    monkeypatch.setattr(fmaprep.formats.records, "read_records", broken)
    with pytest.raises(ValueError, match="disk on fire"):
        export_memmap(str(out), str(dest), overwrite=True)
    monkeypatch.undo()
    assert read_export(dest)[0].tobytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mm", "o"]

    out2 = write_parquet_output(tmp_path / "o2", [small_records([9], seed=5)])
    export_memmap(str(out2), str(dest), overwrite=True)
    assert read_export(dest)[0].size == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mm", "o", "o2"]


def test_cli_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "mm")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmaprep export: ") and "Traceback" not in err
    assert not (tmp_path / "mm").exists()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_export_overwrite_deletes_only_an_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``export nest/out nest --overwrite`` once deleted the inputs and two outputs: DEST equal
    to, inside or containing OUTPUT is refused, and --overwrite replaces only a folder holding
    nothing but an export's two files (hidden files count); each refusal is one line."""
    nest = tmp_path / "nest"
    out = write_parquet_output(nest / "out", [small_records([4, 4])])
    (nest / "in").mkdir()
    (nest / "in" / "000002.mp3").write_bytes(b"an input")
    (nest / "mine").mkdir()
    (nest / "mine" / ".hidden").write_bytes(b"hidden")
    (nest / "mine" / CODES_FILE).write_bytes(b"not an export's")
    before = _tree(nest)
    for dest, words in (
        (nest, "contains OUTPUT"),
        (nest / "out", "is OUTPUT"),
        (nest / "out" / "mm", "lies inside OUTPUT"),
        (nest / "mine", "did not write (.hidden)"),
        (nest / "in" / "000002.mp3", "not an export directory"),
    ):
        assert main(["export", str(out), str(dest), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("fmaprep export: ") and words in err, err
    assert _tree(nest) == before
