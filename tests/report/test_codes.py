"""report's code histogram from the tasks' per-part statistics, and its stated fallback."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.records import read_commit, read_output_info, read_records
from fmaprep.job.run import run_preprocess
from fmaprep.report.codes import SAMPLE_TRACKS, code_histogram

from conftest import write_audio, write_parquet_output


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


@pytest.mark.slow
def test_a_resumed_outputs_histogram_is_exact_without_reading_its_kept_records(
    spark: Any, tmp_path: Path
) -> None:
    """Two resumes: the first adds a track and gives another new bytes (its old record stays
    in its part, excluded by the commit), the second adds one more; the kept parts' histograms
    are carried through both commits, and the report's histogram equals numpy's count of
    every committed record, reading only the one superseded record."""
    root, out = tmp_path / "c", tmp_path / "out"

    def write(i: int, seed: int) -> None:
        write_audio(root / f"{i:06d}.mp3", music(1.0, 8000, seed=seed), 8000)

    def check(superseded: int) -> None:
        want = np.zeros(256, np.int64)
        for record in read_records(str(out)):
            want += np.bincount(record["codes"], minlength=256)
        got = code_histogram(str(out), read_output_info(str(out)))
        np.testing.assert_array_equal(got.counts, want)
        assert got.how == "the tasks' statistics (exact)"
        assert got.records_read == superseded

    for i in range(4):
        write(i, seed=i)
    run_preprocess(str(root), str(out), load_config(job_overrides={"partitions": 2}), spark)
    check(0)
    resume = load_config(job_overrides={"mode": "resume", "partitions": 2})
    write(4, seed=4)
    write(1, seed=41)  # new bytes for a kept track
    os.utime(root / "000001.mp3", (2e9, 2e9))
    result = run_preprocess(str(root), str(out), resume, spark)
    assert result.counts["ok"] == 5
    commit = read_commit(str(out))
    assert commit is not None and sum(len(p.exclude) for p in commit.parts) == 1
    check(1)
    write(5, seed=5)
    run_preprocess(str(root), str(out), resume, spark)
    assert len(list(read_records(str(out)))) == 6
    check(1)
