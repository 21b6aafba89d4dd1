"""The preprocess job end to end on real mp3s, in local Spark (slow: starts JVMs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.records import read_records
from fmaprep.job.run import run_preprocess
from fmaprep.storage.uris import StorageError

from conftest import reference_codes, write_audio

pytestmark = pytest.mark.slow

FMAPREP = [sys.executable, "-m", "fmaprep"]


def make_corpus(root: Path, n_good: int = 8) -> dict[str, str]:
    """Good mp3s of assorted rates/layouts (FMA layout) and bad files; returns id -> expected."""
    expect: dict[str, str] = {}
    tracks = []
    for i in range(n_good):
        tid = f"{100 + 37 * i:06d}"
        sr = (44100, 48000, 22050, 32000)[i % 4]
        stereo = i % 3 != 2
        write_audio(
            root / tid[:3] / f"{tid}.mp3", music(3.0 + i % 3, sr, seed=i, stereo=stereo), sr
        )
        expect[tid] = "ok"
        tracks.append({"id": int(tid), "title": f"Song {i}", "artist": "A", "genre": "Rock"})
    (root / "999").mkdir()
    (root / "999" / "999001.mp3").write_bytes(b"")
    expect["999001"] = "empty"
    (root / "999" / "999002.mp3").write_text("<!DOCTYPE html><html>Too Many Requests</html>")
    expect["999002"] = "not_audio"
    (root / "notes.txt").write_text("not an audio extension: ignored")
    (root / "_tracks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tracks))
    return expect


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


@pytest.fixture(scope="module")
def output(
    spark: Any, corpus: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("job") / "out"
    result = run_preprocess(
        str(corpus[0]), str(out), load_config(job_overrides={"max_error_rate": 0.5}), spark
    )
    assert result.counts["inputs"] == len(corpus[1])
    return out


def _manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "_manifest.jsonl").read_text().splitlines()]


def test_every_input_has_one_manifest_line(
    output: Path, corpus: tuple[Path, dict[str, str]]
) -> None:
    lines = _manifest(output)
    assert sorted(line["track_id"] for line in lines) == sorted(corpus[1])
    for line in lines:
        want = corpus[1][line["track_id"]]
        if want == "ok":
            assert line["status"] == "ok"
            assert {
                "source_sample_rate",
                "source_channels",
                "duration_s",
                "n_samples",
                "gain",
            } <= set(line)
        else:
            assert line["status"] == "error" and line["error"].startswith(want + ": ")
    names = {p.name for p in output.iterdir()}
    assert {"_SUCCESS", "_manifest.jsonl", "_stats.json"} <= names
    assert not [n for n in names if n.startswith(".")]  # no staging or checksum leftovers
    assert {n for n in names if not n.startswith("part-")} == {
        "_SUCCESS",
        "_manifest",  # the manifest shards that the commit names
        "_fmaprep",  # the lease and the run records
        "_manifest.jsonl",
        "_stats.json",
    }  # the workers' _temporary scratch is gone too
    stats = json.loads((output / "_stats.json").read_text())
    assert (
        stats["ok"] == 8
        and stats["failed"] == 2
        and stats["failed_by_reason"] == {"empty": 1, "not_audio": 1}
    )
    assert stats["config"]["pipeline"]["sample_rate"] == 8000 and "pyspark" in stats["versions"]


def test_records_equal_the_pure_functions_on_the_same_decoded_samples(
    output: Path, corpus: tuple[Path, dict[str, str]]
) -> None:
    records = {r["track_id"]: r for r in read_records(str(output))}
    assert sorted(records) == sorted(t for t, s in corpus[1].items() if s == "ok")
    cfg = load_config().pipeline
    for tid, record in records.items():
        codes, gain = reference_codes(record["source"], cfg)
        np.testing.assert_array_equal(record["codes"], codes)
        assert record["gain"] == pytest.approx(gain)
        assert record["sample_rate"] == 8000 and record["codes"].dtype == np.uint8
        assert record["genre"] == "Rock" and record["title"].startswith("Song ")
        assert record["source"].endswith(f"/{tid[:3]}/{tid}.mp3")


def test_read_records_equals_spark_pickle_file(spark: Any, output: Path) -> None:
    ours = list(read_records(str(output)))
    theirs = spark.sparkContext.pickleFile(f"file://{output}").collect()
    assert len(ours) == len(theirs) == 8
    key = lambda r: r["track_id"]  # noqa: E731
    for a, b in zip(sorted(ours, key=key), sorted(theirs, key=key), strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_array_equal(a["codes"], b["codes"])
        assert {k: v for k, v in a.items() if k != "codes"} == {
            k: v for k, v in b.items() if k != "codes"
        }


def _codes_by_id(out: Path) -> dict[str, bytes]:
    return {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}


def test_local1_and_local2_write_the_same_codes(
    output: Path, corpus: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    out1 = tmp_path / "one"
    proc = subprocess.run(
        [
            *FMAPREP,
            "preprocess",
            str(corpus[0]),
            str(out1),
            "--master",
            "local[1]",
            "--max-error-rate",
            "0.5",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "8 ok, 2 failed" in proc.stdout
    assert _codes_by_id(out1) == _codes_by_id(output)


def test_existing_output_is_refused_then_overwritten(
    spark: Any, corpus: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cfg = load_config(job_overrides={"max_error_rate": 0.5})
    run_preprocess(str(corpus[0]), str(out), cfg, spark)
    before = _codes_by_id(out)
    with pytest.raises(StorageError, match=r"exists.*--mode overwrite"):
        run_preprocess(str(corpus[0]), str(out), cfg, spark)
    cfg_over = load_config(
        pipeline_overrides={"channel": "right"},
        job_overrides={"mode": "overwrite", "max_error_rate": 0.5},
    )
    run_preprocess(str(corpus[0]), str(out), cfg_over, spark)
    after = _codes_by_id(out)
    assert after.keys() == before.keys() and after != before  # right channel differs
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_resume_adds_only_what_is_missing(spark: Any, tmp_path: Path) -> None:
    root = tmp_path / "c"
    for i in range(3):
        write_audio(root / f"{i:06d}.mp3", music(2.0, 44100, seed=i), 44100)
    out = tmp_path / "out"
    run_preprocess(str(root), str(out), load_config(), spark)
    first = _codes_by_id(out)
    for i in range(3, 5):
        write_audio(root / f"{i:06d}.mp3", music(2.0, 44100, seed=i), 44100)
    result = run_preprocess(
        str(root), str(out), load_config(job_overrides={"mode": "resume"}), spark
    )
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["processed_this_run"] == 2 and result.counts["ok"] == 5
    both = _codes_by_id(out)
    assert sorted(both) == [f"{i:06d}" for i in range(5)]
    assert all(both[k] == v for k, v in first.items())
    assert len(list(read_records(str(out)))) == 5  # each track exactly once
    with pytest.raises(StorageError, match="another pipeline config"):
        other = load_config(pipeline_overrides={"mu": 127}, job_overrides={"mode": "resume"})
        run_preprocess(str(root), str(out), other, spark)


def test_cli_fails_when_error_rate_is_exceeded(tmp_path: Path) -> None:
    root = tmp_path / "c"
    write_audio(root / "000001.mp3", music(1.0, 44100, seed=1), 44100)
    (root / "000002.mp3").write_bytes(b"\x00" * 100)
    proc = subprocess.run(
        [*FMAPREP, "preprocess", str(root), str(tmp_path / "o"), "--master", "local[1]"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "1 ok, 1 failed" in proc.stdout and "too many failures" in proc.stdout
    assert "000002.mp3:" in proc.stdout
    assert (tmp_path / "o" / "_manifest.jsonl").exists()  # the output is still complete


@pytest.mark.parametrize(
    ("name", "error"),
    [("nope", "does not exist"), ("nope/*.mp3", "no audio files"), ("empty", "no audio files")],
)
def test_cli_errors_are_one_line(tmp_path: Path, name: str, error: str) -> None:
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [*FMAPREP, "preprocess", str(tmp_path / name), str(tmp_path / "o"), "--master", "local[1]"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert error in proc.stderr and proc.stderr.rstrip().count("\n") == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # refused before Spark starts, and OUTPUT left as it was (it did not exist)
    assert "starting Spark" not in proc.stderr
    assert not (tmp_path / "o").exists()
