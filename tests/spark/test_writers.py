"""fmaprep.spark.writers without Spark: the parquet row layout and the format -> saver choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.parquet import PARQUET_COLUMNS, record_to_row
from fmaprep.model import METADATA_KEYS, InputFile
from fmaprep.pipeline import process_file
from fmaprep.spark.writers import (
    save_records,
    save_records_parquet,
    saver_for,
)

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


def test_saver_for_each_format() -> None:
    assert saver_for("pickle") is save_records
    assert saver_for("parquet") is save_records_parquet
    with pytest.raises(ValueError, match="unknown output format"):
        saver_for("csv")
