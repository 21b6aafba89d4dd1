"""A corpus of good mp3s with one hostile file of each kind mixed in, and what each must become.

For the Spark tests: the job runs with this directory on its workers' PYTHONPATH (so the
hostile decoder of ``sitecustomize`` is installed there) and with :data:`CONFIG`.
"""

from __future__ import annotations

import fnmatch
import json
import socket
from pathlib import Path

import numpy as np

from fmaprep.audio.synth import music
from fmaprep.config import PipelineConfig
from fmaprep.formats.records import read_records
from fmaprep.model import InputFile
from fmaprep.pipeline import process_file

from conftest import write_audio

HERE = Path(__file__).resolve().parent
TIMEOUT_S, MEMORY_MB = 2.0, 300
CONFIG = f"[pipeline]\ntimeout_s = {TIMEOUT_S}\nmax_memory_mb = {MEMORY_MB}\n"

# what each kind's manifest line says, from the reasons' definitions (README, Bad input)
EXPECTED = {
    "struct": "decode_failed: error: unpack requires a buffer of 4 bytes",
    "type": "decode_failed: TypeError: 'NoneType' object is not subscriptable",
    "index": "decode_failed: IndexError: list index out of range",
    "custom": "decode_failed: LibraryOwnError: bad frame header at byte 417",
    "stderr": "not_audio: ffmpeg: x.mp3: Invalid data found when processing input",
    "pause": f"timeout: not decoded within {TIMEOUT_S:g} s (stuck; its decode process was killed)",
    "socket": f"timeout: not decoded within {TIMEOUT_S:g} s (stuck; its decode process was killed)",
    "segv": "crashed: took its decode process down 2 times (SIGSEGV, SIGSEGV)",
    "oom": "unsupported: ran out of memory at its * MB address-space limit (max_memory_mb="
    f"{MEMORY_MB} over the decode process's start, or spark.executor.pyspark.memory)",
}


def make_corpus(root: Path, kinds: list[str], n_good: int = 6) -> dict[str, str]:
    """Write the corpus; returns track id -> "ok" or the expected error."""
    expected: dict[str, str] = {}
    for i in range(n_good):
        tid = f"{400 + i:06d}"
        write_audio(root / tid[:3] / f"{tid}.mp3", music(1.5, 44100, seed=80 + i), 44100)
        expected[tid] = "ok"
    for i, kind in enumerate(kinds):
        tid = f"{900 + i:06d}-hostile-{kind}"
        write_audio(root / "900" / f"{tid}.mp3", music(1.0, 44100, seed=99), 44100)
        expected[tid] = EXPECTED[kind]
    (root / "config.toml").write_text(CONFIG)
    return expected


def spark_conf(listener: socket.socket, scratch: Path) -> list[str]:
    """--spark-conf / --conf values that install the hostile decoder on the executors."""
    port = listener.getsockname()[1]
    env = {"PYTHONPATH": HERE, "FMAPREP_HOSTILE_PORT": port, "FMAPREP_HOSTILE_DIR": scratch}
    return [f"spark.executorEnv.{name}={value}" for name, value in env.items()]


def check_output(out: Path, corpus: Path, expected: dict[str, str]) -> None:
    """Each bad file exactly one line with its reason; each good file the record this process's
    pipeline makes of it."""
    lines = [json.loads(x) for x in (out / "_manifest.jsonl").read_text().splitlines()]
    assert sorted(x["track_id"] for x in lines) == sorted(expected)
    got = {x["track_id"]: "ok" if x["status"] == "ok" else x["error"] for x in lines}
    assert got.keys() == expected.keys()
    for tid, want in expected.items():  # "*": a number that depends on the process (fnmatch)
        assert fnmatch.fnmatchcase(got[tid], want), (tid, got[tid], want)
    records = {r["track_id"]: r["codes"] for r in read_records(str(out))}
    assert sorted(records) == sorted(t for t, e in expected.items() if e == "ok")
    for tid, codes in records.items():
        path = corpus / tid[:3] / f"{tid}.mp3"
        want, _ = process_file(InputFile(str(path), path.stat().st_size), PipelineConfig())
        assert want is not None
        np.testing.assert_array_equal(codes, want["codes"])
