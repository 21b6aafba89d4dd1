"""Bad input, killed workers, reruns: the job keeps going, loses nothing, shows nothing half-done.
(slow: starts Spark)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.records import OutputChangedError, read_records
from fmaprep.job.run import run_preprocess
from support.processes import pyspark_processes

from conftest import crash_env, reference_codes, tone, write_audio, write_mp3_lame

pytestmark = pytest.mark.slow


def _id3v2_tag(payload_bytes: int) -> bytes:
    frame = b"PRIV" + payload_bytes.to_bytes(4, "big") + b"\x00\x00" + b"\x00" * payload_bytes
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def make_bad_corpus(root: Path) -> dict[str, str]:
    """Every kind of input a real collection holds; returns file stem -> expected status/reason."""
    root.mkdir(parents=True)
    expect = {}
    good = write_mp3_lame(root / "good_stereo.mp3", music(6.0, 44100, seed=1), 44100)
    expect["good_stereo"] = "ok"
    (root / "zero_bytes.mp3").write_bytes(b"")
    expect["zero_bytes"] = "empty"
    rng = np.random.default_rng(7)
    (root / "random_bytes.mp3").write_bytes(rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    expect["random_bytes"] = "not_audio"
    data = good.read_bytes()
    (root / "truncated.mp3").write_bytes(data[: len(data) // 2])
    expect["truncated"] = "truncated"
    (root / "html_page.mp3").write_text("<!DOCTYPE html>\n<html><body>Rate limited</body></html>\n")
    expect["html_page"] = "not_audio"
    (root / "big_id3.mp3").write_bytes(_id3v2_tag(5 * 1024 * 1024) + data)
    expect["big_id3"] = "ok"
    write_mp3_lame(root / "mono.mp3", music(4.0, 44100, seed=2, stereo=False), 44100)
    expect["mono"] = "ok"
    for sr in (22050, 32000, 48000):
        write_mp3_lame(root / f"rate_{sr}.mp3", music(4.0, sr, seed=sr), sr)
        expect[f"rate_{sr}"] = "ok"
    write_audio(
        root / "eight_bit.wav", music(3.0, 11025, seed=3, stereo=False), 11025, "WAV", "PCM_U8"
    )
    expect["eight_bit"] = "ok"
    write_audio(root / "hundredth.wav", music(1.0, 44100, seed=4)[:441], 44100, "WAV", "PCM_16")
    expect["hundredth"] = "too_short"
    write_audio(root / "silent.mp3", np.zeros((44100 * 3, 2)), 44100)
    expect["silent"] = "silent"
    quiet = music(3.0, 44100, seed=5) * 10 ** (-70 / 20)  # -70 dBFS: would be amplified into noise
    write_audio(root / "near_silent.wav", quiet, 44100, "WAV", "FLOAT")
    expect["near_silent"] = "silent"
    hour = np.tile(music(10.0, 22050, seed=6, stereo=False), (360, 1))
    write_mp3_lame(root / "one_hour.mp3", hour, 22050, vbr_quality=9)
    expect["one_hour"] = "ok"
    return expect


def test_bad_input_corpus(spark: Any, tmp_path: Path) -> None:
    expect = make_bad_corpus(tmp_path / "bad")
    out = tmp_path / "out"
    cfg = load_config(job_overrides={"max_error_rate": 1.0})
    result = run_preprocess(str(tmp_path / "bad"), str(out), cfg, spark)
    lines = {line["track_id"]: line for line in map(json.loads, (out / "_manifest.jsonl").open())}
    assert sorted(lines) == sorted(expect)
    for stem, want in expect.items():
        line = lines[stem]
        if want == "ok":
            assert line["status"] == "ok", line
        else:
            assert line["status"] == "error" and line["error"].startswith(f"{want}: "), line
            assert "\n" not in line["error"]
    # good files are right: the same codes the pure pipeline gives on the same decoded samples
    records = {r["track_id"]: r for r in read_records(str(out))}
    assert sorted(records) == sorted(k for k, v in expect.items() if v == "ok")
    for stem, record in records.items():
        if stem == "one_hour":
            assert abs(record["codes"].size - 3600 * 8000) <= 8000
            continue
        codes, _ = reference_codes(record["source"], cfg.pipeline)
        np.testing.assert_array_equal(record["codes"], codes, err_msg=stem)
    assert lines["one_hour"]["duration_s"] == pytest.approx(3600, abs=1)
    assert result.counts["failed"] == sum(1 for v in expect.values() if v != "ok")


def test_dedupe(spark: Any, tmp_path: Path) -> None:
    root = tmp_path / "c"
    a = write_audio(root / "000001.mp3", music(2.0, 44100, seed=1), 44100)
    (root / "copy").mkdir()
    (root / "copy" / "000009.mp3").write_bytes(a.read_bytes())
    write_audio(root / "000002.mp3", music(2.0, 44100, seed=2), 44100)
    out = tmp_path / "out"
    result = run_preprocess(str(root), str(out), load_config(job_overrides={"dedupe": True}), spark)
    assert (
        result.counts["ok"] == 2
        and result.counts["duplicates"] == 1
        and result.counts["failed"] == 0
    )
    lines = {line["track_id"]: line for line in map(json.loads, (out / "_manifest.jsonl").open())}
    assert lines["000009"]["status"] == "duplicate"
    assert lines["000009"]["duplicate_of"] == str(a)
    assert sorted(r["track_id"] for r in read_records(str(out))) == ["000001", "000002"]


def _outcome(out: Path) -> tuple[dict[str, bytes], dict[str, tuple[str, str | None]]]:
    """(track_id -> codes, failing on a track twice; track_id -> (status, duplicate_of)),
    failing on an input twice in the manifest."""
    codes: dict[str, bytes] = {}
    for r in read_records(str(out)):
        assert r["track_id"] not in codes, f"{r['track_id']} twice"
        codes[r["track_id"]] = r["codes"].tobytes()
    lines = [json.loads(x) for x in (out / "_manifest.jsonl").open()]
    assert len({ln["source"] for ln in lines}) == len(lines), "an input twice in the manifest"
    return codes, {ln["track_id"]: (ln["status"], ln.get("duplicate_of")) for ln in lines}


def _dedupe_corpus(root: Path) -> Path:
    """Two contents under three names (000009 is 000001's bytes), and a third content."""
    a = write_audio(root / "000001.mp3", music(2.0, 44100, seed=1), 44100)
    (root / "copy").mkdir(parents=True)
    (root / "copy" / "000009.mp3").write_bytes(a.read_bytes())
    write_audio(root / "000002.mp3", music(2.0, 44100, seed=2), 44100)
    return a


def test_resume_dedupe_after_a_killed_run_without_dedupe(spark: Any, tmp_path: Path) -> None:
    """A first run without --dedupe, killed after its tasks, kept both copies' records; a
    resume with --dedupe ends as a clean --dedupe run: one record per content, the copy a
    ``duplicate`` line (and its record, in a kept part, excluded)."""
    root = tmp_path / "c"
    _dedupe_corpus(root)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", str(root), str(out),
           "--master", "local[2]", "--partitions", "2"]  # fmt: skip
    env = crash_env(dict(os.environ), "before-commit")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0, "the first run was not killed"
    dedupe = {"dedupe": True}
    run_preprocess(str(root), str(out), load_config(job_overrides={**dedupe, "mode": "resume"}),
                   spark)  # fmt: skip
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["processed_this_run"] == 0  # the killed run's three records were kept
    clean = tmp_path / "clean"
    run_preprocess(str(root), str(clean), load_config(job_overrides=dedupe), spark)
    (got, got_lines), (want, want_lines) = _outcome(out), _outcome(clean)
    assert got_lines == want_lines
    assert got.keys() == want.keys()
    assert got == want
    assert got_lines["000009"][0] == "duplicate"


def test_resume_dedupe_finds_a_new_copy_of_a_kept_record(spark: Any, tmp_path: Path) -> None:
    root = tmp_path / "c"
    a = _dedupe_corpus(root)
    out = tmp_path / "out"
    cfg = load_config(job_overrides={"dedupe": True, "mode": "resume"})
    run_preprocess(str(root), str(out), cfg, spark)
    (root / "copy2").mkdir()
    (root / "copy2" / "000010.mp3").write_bytes(a.read_bytes())  # after 000001 in name order
    run_preprocess(str(root), str(out), cfg, spark)
    clean = tmp_path / "clean"
    run_preprocess(str(root), str(clean), load_config(job_overrides={"dedupe": True}), spark)
    assert _outcome(out) == _outcome(clean)
    assert _outcome(out)[1]["000010"] == ("duplicate", str(a))


def _worker_pids(session: int) -> list[int]:
    """Python workers forked by pyspark.daemon (not the daemons themselves) of the job started
    as session leader ``session``: never another process's Spark on the machine."""
    mine = []
    for pid in pyspark_processes()[1]:
        with contextlib.suppress(ProcessLookupError):
            if os.getsid(pid) == session:
                mine.append(pid)
    return mine


SLOW_PATH = ("--decoder", "pydub", "--resampler", "resampy")  # keeps a worker busy for seconds


def test_killed_worker_then_killed_driver_then_resume(tmp_path: Path) -> None:
    """Local disk: a Python worker is SIGKILLed mid-task, then the driver dies before the commit
    (after 4 of 8 files); a resume completes with every input once, with the pure functions'
    codes."""
    root = tmp_path / "c"
    paths = [write_audio(root / f"{i:06d}.mp3", music(4.0, 44100, seed=i), 44100) for i in range(8)]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", str(root), str(out), "--master",
           "local[2]", "--partitions", "8", *SLOW_PATH]  # fmt: skip
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=crash_env(env, "tasks:4"),
    )  # fmt: skip
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        if _worker_pids(proc.pid):
            time.sleep(0.5)  # into a task
            workers = _worker_pids(proc.pid)
            if workers and proc.poll() is None:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=300)
    assert killed is not None, "no Python worker of the job was seen to kill"
    assert proc.returncode == 137, stderr[-3000:]  # the crash hook: the driver died
    assert not (out / "_SUCCESS").exists()
    done = subprocess.run(
        [*cmd, "--mode", "resume"], env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "_manifest.jsonl").open()]
    assert sorted(line["source"] for line in lines) == sorted(map(str, paths))
    cfg = load_config(pipeline_overrides={"decoder": "pydub", "resampler": "resampy"})
    seen: dict[str, np.ndarray] = {}
    for record in read_records(str(out)):
        assert record["source"] not in seen, f"{record['source']} twice"
        seen[record["source"]] = record["codes"]
    assert sorted(seen) == sorted(map(str, paths))
    for path in paths:
        np.testing.assert_array_equal(seen[str(path)], reference_codes(path, cfg.pipeline)[0])


def test_killed_worker_is_retried_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    root = tmp_path / "c"
    for i in range(24):
        write_audio(root / f"{i:06d}.mp3", music(8.0, 44100, seed=i), 44100)
    out = tmp_path / "out"
    # the original design's slow path keeps workers busy long enough to be killed mid-task
    cmd = [
        sys.executable,
        "-m",
        "fmaprep",
        "preprocess",
        str(root),
        str(out),
        "--master",
        "local[2]",
        "--decoder",
        "pydub",
        "--resampler",
        "resampy",
        "--partitions",
        "8",
    ]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        workers = _worker_pids(proc.pid)
        if workers:
            time.sleep(1.0)  # let it get into a task
            workers = _worker_pids(proc.pid)
            if workers:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    stdout, stderr = proc.communicate(timeout=600)
    assert killed is not None, "no Python worker was seen to kill"
    assert proc.returncode == 0, stderr[-3000:]
    assert "24 ok, 0 failed" in stdout
    ids = [r["track_id"] for r in read_records(str(out))]
    assert sorted(ids) == [f"{i:06d}" for i in range(24)]  # each track exactly once
    lines = [json.loads(line) for line in (out / "_manifest.jsonl").open()]
    assert sorted(line["track_id"] for line in lines) == [f"{i:06d}" for i in range(24)]


def test_interrupted_run_leaves_nothing_then_resume_adds_only_what_is_missing(
    spark: Any, tmp_path: Path
) -> None:
    root = tmp_path / "c"
    for i in range(4):
        write_audio(root / f"{i:06d}.mp3", music(2.0, 44100, seed=i), 44100)
    out = tmp_path / "out"
    # every run the killed one's pipeline (a resume needs the same config key)
    slow = {"decoder": "pydub", "resampler": "resampy"}
    run_preprocess(str(root), str(out), load_config(pipeline_overrides=slow), spark)
    first = {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}
    for i in range(4, 10):
        write_audio(root / f"{i:06d}.mp3", music(6.0, 44100, seed=i), 44100)
    # a resume run killed in the middle leaves the output as it was
    cmd = [
        sys.executable,
        "-m",
        "fmaprep",
        "preprocess",
        str(root),
        str(out),
        "--master",
        "local[1]",
        "--mode",
        "resume",
        *SLOW_PATH,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not _worker_pids(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "the resume to kill had already ended"
    proc.kill()
    proc.wait()
    assert {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))} == first
    # then a resume adds the six new tracks (fewer, if the killed run finished a task: its
    # committed task outputs are kept)
    result = run_preprocess(
        str(root),
        str(out),
        load_config(pipeline_overrides=slow, job_overrides={"mode": "resume"}),
        spark,
    )
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["processed_this_run"] <= 6 and result.counts["ok"] == 10
    both = [r["track_id"] for r in read_records(str(out))]
    assert sorted(both) == [f"{i:06d}" for i in range(10)]
    # and an input that changed since is processed again, its new record replacing the old
    write_audio(root / "000000.mp3", music(2.0, 44100, seed=99), 44100)
    run_preprocess(
        str(root),
        str(out),
        load_config(pipeline_overrides=slow, job_overrides={"mode": "resume"}),
        spark,
    )
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["processed_this_run"] == 1
    again = {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}
    assert sorted(again) == [f"{i:06d}" for i in range(10)]
    assert again["000000"] != first["000000"] and again["000001"] == first["000001"]


def test_overwrite_while_a_reader_reads_never_mixes(spark: Any, tmp_path: Path) -> None:
    root = tmp_path / "c"
    for i in range(6):
        write_audio(root / f"{i:06d}.mp3", music(2.0, 44100, seed=i), 44100)
    out = tmp_path / "out"
    run_preprocess(str(root), str(out), load_config(job_overrides={"partitions": 6}), spark)
    old = {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}
    reader = read_records(str(out))
    seen = [next(reader)]
    cfg = load_config(
        pipeline_overrides={"channel": "right"},
        job_overrides={"mode": "overwrite", "partitions": 6},
    )
    run_preprocess(str(root), str(out), cfg, spark)
    with contextlib.suppress(OutputChangedError):  # failing loudly is allowed; mixing is not
        seen.extend(reader)
    assert all(old[r["track_id"]] == r["codes"].tobytes() for r in seen)
    new = {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}
    assert new.keys() == old.keys() and new != old


def test_silence_threshold_is_configurable(tmp_path: Path) -> None:
    from fmaprep.config import PipelineConfig
    from fmaprep.model import InputFile
    from fmaprep.pipeline import process_file

    path = tmp_path / "q.wav"
    amplitude = 10 ** (-70 / 20)  # a 200 Hz tone at -70 dBFS: resampling keeps its peak
    sf.write(path, tone(200, 2.0, 16000, amplitude), 16000, subtype="FLOAT")
    _, line = process_file(InputFile(str(path), 1), PipelineConfig())
    assert line["error"].startswith("silent: ")
    record, line = process_file(InputFile(str(path), 1), PipelineConfig(silence_db=-90))
    assert record is not None and line["gain"] == pytest.approx(1 / amplitude, rel=0.01)
