"""fmaprep.spark.writers without Spark: the parquet row layout, and one task's part and manifest
shard (its task commit) written as a task would, checked against the pipeline run directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.parquet import PARQUET_COLUMNS, record_to_row
from fmaprep.formats.records import read_partition
from fmaprep.job.commit import config_key
from fmaprep.model import METADATA_KEYS, InputFile
from fmaprep.pipeline import process_file
from fmaprep.spark.writers import TaskPlan, write_part
from fmaprep.storage.clients import StoreSettings

from conftest import write_audio


def test_every_record_field_has_a_parquet_column(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "000007.mp3", music(1.0, 22050, seed=3), 22050)
    metadata = {key: f"{key} value" for key in (*METADATA_KEYS, "sha1")}  # sha1: --dedupe
    record, line = process_file(
        InputFile(str(path), path.stat().st_size, metadata), load_config().pipeline
    )
    assert record is not None and line["status"] == "ok"
    row = record_to_row(record)
    names = [name for name, _ in PARQUET_COLUMNS]
    assert set(names) == set(record) and len(row) == len(names)
    by_name = dict(zip(names, row, strict=True))
    assert by_name["codes"] == record["codes"].tobytes()
    assert {k: v for k, v in by_name.items() if k != "codes"} == {
        k: v for k, v in record.items() if k != "codes"
    }
    sparse = record_to_row({k: v for k, v in record.items() if k not in METADATA_KEYS})
    assert [
        v for (name, _), v in zip(PARQUET_COLUMNS, sparse, strict=True) if name in METADATA_KEYS
    ] == [None] * len(METADATA_KEYS)
    with pytest.raises(ValueError, match="without a parquet column"):
        record_to_row({**record, "tempo": 120})


@pytest.mark.parametrize("fmt", ["pickle", "parquet"])
def test_a_task_writes_its_part_then_its_shard(tmp_path: Path, fmt: str) -> None:
    items = []
    for i in range(3):
        path = write_audio(tmp_path / "in" / f"00000{i}.mp3", music(1.0, 44100, seed=i), 44100)
        items.append(InputFile(str(path), path.stat().st_size))
    (tmp_path / "in" / "000009.mp3").write_bytes(b"<html>not audio</html>")
    items.append(InputFile(str(tmp_path / "in" / "000009.mp3"), 22))
    config = load_config(job_overrides={"format": fmt})
    out = tmp_path / "out"
    plan = TaskPlan(str(out), "20261203T000000Zabcdef", fmt, config.pipeline, StoreSettings(),
                    config_key(config))  # fmt: skip
    result = write_part(plan, 7, items)
    assert result.part.startswith("part-00007-20261203T000000Zabcdef-a0")
    assert result.part.endswith(".parquet") == (fmt == "parquet")
    assert (out / result.part).stat().st_size == result.part_bytes and result.records == 3
    rows = [json.loads(x) for x in (out / result.shard).read_text().splitlines()]
    code_counts = rows[0]["_task"].pop("code_counts")  # checked against the part below
    assert rows[0]["_task"] == {"part": result.part, "bytes": result.part_bytes, "records": 3,
                                "config_key": config_key(config)}  # fmt: skip
    assert rows[1:] == result.lines and [r["status"] for r in rows[1:]] == ["ok"] * 3 + ["error"]
    assert all(r["part"] == result.part for r in rows[1:4]) and "part" not in rows[4]
    if fmt == "pickle":
        got = list(read_partition(out / result.part))
    else:
        from fmaprep.formats.parquet import read_parquet_part

        got = list(read_parquet_part(out / result.part, {}, lambda v, a: True))
    want_counts = sum(np.bincount(r["codes"], minlength=256) for r in got)
    assert code_counts == want_counts.tolist()  # the part's code histogram, for report
    for record, item in zip(got, items, strict=False):
        want, _ = process_file(item, config.pipeline)
        assert want is not None and record["track_id"] == want["track_id"]
        np.testing.assert_array_equal(record["codes"], want["codes"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
