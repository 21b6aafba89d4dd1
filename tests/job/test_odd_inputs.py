"""One preprocess run over a corpus of odd inputs, as a new user's disk has them: a name with
glob characters, a dangling link, a link loop, one track id twice (two folders, two
extensions), hostile _tracks.jsonl lines. Every input ends as exactly one manifest line; no
record twice; the run goes on. (Real mp3/wav files, the suite's local[2] session.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.records import read_records
from fmaprep.job.run import run_preprocess

from conftest import write_audio


def _corpus(root: Path) -> dict[str, Path]:
    sr = 22050
    made = {
        "a": write_audio(root / "000" / "000009.mp3", music(1.0, sr, seed=1), sr),
        "b": write_audio(root / "001" / "000009.mp3", music(1.0, sr, seed=2), sr),
        "song_mp3": write_audio(root / "x" / "song.mp3", music(1.0, sr, seed=3), sr),
        "song_wav": write_audio(root / "x" / "song.wav", music(1.0, sr, seed=4), sr),
        "take": write_audio(root / "x" / "take[1].mp3", music(1.0, sr, seed=5), sr),
        "take1": write_audio(root / "x" / "take1.mp3", music(1.0, sr, seed=6), sr),
    }
    (root / "x" / "000777.mp3").symlink_to(root / "nowhere.mp3")  # dangling
    (root / "x" / "loop").symlink_to(root)  # a loop a glob must not follow
    (root / "_tracks.jsonl").write_bytes(
        b'{"id": "000009", "status": "ok", "title": "' + b"N" * 5000 + b'"}\n'
        b'{"id": "000010", "status": "ok", "title": Infinity}\n'
        b'{"id": "000011", "status": "ok", "bytes": 1e400}\n'
        + b'{"id": "000012", "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}\n"
        + b'{"id": "000013", "title": "\xff\xfe"}\n'
    )
    return made


def test_odd_inputs_each_end_as_one_line(spark: Any, tmp_path: Path) -> None:
    made = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    result = run_preprocess(str(tmp_path / "in"), str(out), load_config(), spark)
    lines = [json.loads(x) for x in (out / "_manifest.jsonl").open()]
    by_source = {ln["source"]: ln for ln in lines}
    assert len(by_source) == len(lines) == 7, lines  # six files, one dangling link
    assert by_source[str(made["b"])]["status"] == "duplicate"
    assert by_source[str(made["b"])]["reason"] == "duplicate_id"
    assert by_source[str(made["b"])]["duplicate_of"] == str(made["a"])
    assert by_source[str(made["song_wav"])]["duplicate_of"] == str(made["song_mp3"])
    dangling = by_source[str(tmp_path / "in" / "x" / "000777.mp3")]
    assert dangling["status"] == "error" and dangling["error"].startswith("read_failed")
    records = list(read_records(str(out)))
    ids = [r["track_id"] for r in records]
    assert sorted(ids) == sorted(set(ids)) == ["000009", "song", "take1", "take[1]"]
    meta = {r["track_id"]: r for r in records}
    assert meta["000009"]["source"] == str(made["a"])
    title = meta["000009"]["title"]  # metadata values are capped
    assert len(title) == 1024 and title.startswith("NNN") and title.endswith("\u2026")
    assert result.counts["ok"] == 4

    # INPUT as the name with glob characters: that file alone, as a path and as file://
    for arg in (str(made["take"]), f"file://{made['take']}"):
        one = tmp_path / f"one-{len(arg)}"
        run_preprocess(arg, str(one), load_config(), spark)
        assert [r["source"] for r in read_records(str(one))] == [str(made["take"])]
