"""The Python-side writer of saveAsPickleFile's files: byte for byte what Spark writes (but the
random sync marker), and read back by Spark and by fmaprep's own reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.formats import sequencefile as seqfile
from fmaprep.formats.records import read_partition
from fmaprep.formats.sequencefile import PickleFileWriter

HEADER_BYTES = 79  # "SEQ", version, two class names, flags, metadata count; then the sync marker


def records(n: int) -> list[dict[str, Any]]:
    # sizes chosen so that Hadoop's 100 kB sync interval is crossed several times
    return [
        {
            "track_id": f"{i:06d}",
            "codes": np.arange(30_000 + 7919 * i, dtype=np.uint64).astype(np.uint8),
        }
        for i in range(n)
    ]


def write_ours(path: Path, recs: list[dict[str, Any]]) -> bytes:
    with path.open("wb") as f:
        writer = PickleFileWriter(f)
        for record in recs:
            writer.append(record)
        writer.close()
    return path.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("n", [0, 1, 10, 23])
def test_bytes_equal_sparks_save_as_pickle_file(spark: Any, tmp_path: Path, n: int) -> None:
    recs = records(n)
    spark.sparkContext.parallelize(recs, 1).saveAsPickleFile(str(tmp_path / "spark"), batchSize=1)
    theirs = (tmp_path / "spark" / "part-00000").read_bytes()
    ours = write_ours(tmp_path / "ours", recs)
    sync_theirs = theirs[HEADER_BYTES : HEADER_BYTES + 16]
    sync_ours = ours[HEADER_BYTES : HEADER_BYTES + 16]
    assert theirs.count(sync_theirs) == ours.count(sync_ours) >= 1
    assert theirs.replace(sync_theirs, sync_ours) == ours


@pytest.mark.slow
@pytest.mark.parametrize("max_pending", [32 * 1024 * 1024, 100_000])
def test_spark_and_the_reader_read_what_we_write(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_pending: int
) -> None:
    """Also when big records are written in groups of fewer than 10 (bounded memory)."""
    monkeypatch.setattr(seqfile, "MAX_PENDING_BYTES", max_pending)
    recs = records(23)
    out = tmp_path / "out"
    out.mkdir()
    write_ours(out / "part-00000", recs)
    back = spark.sparkContext.pickleFile(str(out)).collect()
    ours = list(read_partition(out / "part-00000"))
    for got in (back, ours):
        assert [r["track_id"] for r in got] == [r["track_id"] for r in recs]
        for a, b in zip(got, recs, strict=True):
            np.testing.assert_array_equal(a["codes"], b["codes"])


def test_pickle_protocol_is_pysparks() -> None:
    """The writer does not import pyspark; its protocol must still be the one Spark's reader
    side expects (PySpark's CPickleSerializer)."""
    from pyspark.serializers import pickle_protocol

    assert pickle_protocol == seqfile.PICKLE_PROTOCOL
