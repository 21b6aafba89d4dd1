"""report's code histogram from the tasks' per-part statistics, and its stated fallback."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.formats.records import read_output_info, read_records
from fmaprep.report.codes import SAMPLE_TRACKS, code_histogram

from conftest import write_parquet_output


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pickle", "parquet"])
def test_a_job_output_histogram_comes_from_the_task_headers(
    job_outputs: dict[str, Path], fmt: str
) -> None:
    out = str(job_outputs[fmt])
    want = np.zeros(256, np.int64)
    for record in read_records(out):
        want += np.bincount(record["codes"], minlength=256)
    got = code_histogram(out, read_output_info(out))
    np.testing.assert_array_equal(got.counts, want)
    assert got.records_read == 0 and got.how == "the tasks' statistics (exact)"


def test_without_statistics_a_seeded_sample_is_scaled_to_the_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = SAMPLE_TRACKS + 36
    records: list[dict[str, Any]] = [
        {
            "track_id": f"{i:06d}",
            "source": f"/m/{i}.mp3",
            "sample_rate": 8000,
            # two kinds of tracks, so the sample's make-up shows in the estimate
            "codes": rng.integers(0, 128 if i % 2 else 256, 50 + i).astype(np.uint8),
        }
        for i in range(n)
    ]
    out = str(write_parquet_output(tmp_path / "o", [records[:40], records[40:]]))
    got = code_histogram(out, read_output_info(out))
    chosen = set(random.Random(0).sample(sorted(r["track_id"] for r in records), SAMPLE_TRACKS))
    sample = np.zeros(256, np.int64)
    for r in records:
        if r["track_id"] in chosen:
            sample += np.bincount(r["codes"], minlength=256)
    total = sum(r["codes"].size for r in records)
    want = np.rint(sample * (total / sample.sum())).astype(np.int64)
    np.testing.assert_array_equal(got.counts, want)
    assert got.records_read == SAMPLE_TRACKS
    assert got.how == f"a seeded sample of {SAMPLE_TRACKS} of {n} tracks (estimated)"
