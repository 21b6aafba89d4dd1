"""fmaprep.formats.parquet against parquet files written independently with pyarrow's writer
(Spark-written parquet is covered in tests/test_export.py, which runs the job)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fmaprep.formats.records import read_records

from conftest import PARQUET_SCHEMA as SCHEMA
from conftest import write_parquet_output


def make_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    lengths = [0, 1, 255, 256, 100_003, *rng.integers(0, 20_000, max(0, n - 5)).tolist()][:n]
    out = []
    for i, length in enumerate(lengths):
        record: dict[str, Any] = {
            "track_id": f"{i:06d}",
            "source": f"/music/{i:06d}.mp3",
            "sample_rate": 8000,
            "mu": 255,
            "codes": rng.integers(0, 256, length).astype(np.uint8),
        }
        if i % 4:  # some tracks have no genre / split: null in parquet, absent in the record
            record["genre"] = ("Rock", "Jazz", "Folk")[i % 3]
        if i % 5:
            record["split"] = ("train", "valid")[i % 2]
        out.append(record)
    return out


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["track_id"] for g in got] == [w["track_id"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        assert g["codes"].dtype == np.uint8 and g["codes"].ndim == 1
        assert g["codes"].flags.writeable  # a copy, like the pickle format's arrays
        np.testing.assert_array_equal(g["codes"], w["codes"])
        assert {k: v for k, v in g.items() if k != "codes"} == {
            k: v for k, v in w.items() if k != "codes"
        }


def test_round_trip_across_parts_and_small_row_groups(tmp_path: Path) -> None:
    records = make_records(40)
    out = write_parquet_output(tmp_path / "o", [records[:7], [], records[7:]], row_group_size=3)
    assert_same(list(read_records(str(out))), records)


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        (
            {"track_ids": ["000003", "000017", "nope"]},
            lambda r: r["track_id"] in {"000003", "000017"},
        ),
        ({"track_ids": "000005"}, lambda r: r["track_id"] == "000005"),
        ({"genres": ["Jazz"]}, lambda r: r.get("genre") == "Jazz"),
        (
            {"genres": ["Jazz"], "splits": ["train"]},
            lambda r: r.get("genre") == "Jazz" and r.get("split") == "train",
        ),
        ({"splits": []}, lambda r: False),
    ],
)
def test_filters_equal_filtering_all_records(
    tmp_path: Path, filters: dict[str, Any], keep: Any
) -> None:
    records = make_records(30, seed=1)
    out = write_parquet_output(tmp_path / "o", [records[:11], records[11:]], row_group_size=4)
    assert_same(list(read_records(str(out), **filters)), [r for r in records if keep(r)])


def test_missing_filter_column_reads_as_none(tmp_path: Path) -> None:
    records = [{k: v for k, v in r.items() if k != "split"} for r in make_records(6)]
    schema = pa.schema([f for f in SCHEMA if f.name != "split"])
    out = write_parquet_output(tmp_path / "o", [records], schema=schema)
    assert list(read_records(str(out), splits=["train"])) == []
    assert len(list(read_records(str(out), genres=["Rock", "Jazz", "Folk"]))) == 4


def test_large_binary_codes(tmp_path: Path) -> None:
    records = make_records(8, seed=2)
    schema = pa.schema([f.with_type(pa.large_binary()) if f.name == "codes" else f for f in SCHEMA])
    out = write_parquet_output(tmp_path / "o", [records], schema=schema)
    assert_same(list(read_records(str(out))), records)


def test_part_without_codes_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    pq.write_table(pa.table({"track_id": ["a"]}), out / "part-00000.parquet")
    (out / "_SUCCESS").touch()
    with pytest.raises(ValueError, match="without codes/track_id"):
        list(read_records(str(out)))
