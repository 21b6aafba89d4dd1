"""fmaprep.isolation: a file that hangs in C, segfaults or eats memory is one manifest line, and
the next file decodes. The failures are real, in the decode process (tests/hostile)."""

from __future__ import annotations

import fnmatch
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fmaprep.audio.synth import music
from fmaprep.config import PipelineConfig
from fmaprep.isolation import GRACE_S, DecodeProcess
from fmaprep.model import InputFile
from fmaprep.pipeline import process_file

from conftest import write_audio

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from sitecustomize import hostile_opener

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The hostile decoder in this process (a decode process forks with it); a listener that
    never answers for the socket kind."""
    from fmaprep.audio import decode

    monkeypatch.setitem(decode.OPENERS, "soundfile", hostile_opener(decode.OPENERS["soundfile"]))
    listener = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setenv("FMAPREP_HOSTILE_PORT", str(listener.getsockname()[1]))
    monkeypatch.setenv("FMAPREP_HOSTILE_DIR", str(tmp_path))
    with listener:
        yield tmp_path


def _good(root: Path, n: int) -> InputFile:
    path = write_audio(root / f"{n:06d}.wav", music(1.0, 22050, seed=n), 22050, "WAV", "PCM_16")
    return InputFile(str(path), path.stat().st_size)


def _bad(root: Path, kind: str) -> InputFile:
    path = write_audio(root / f"900001-hostile-{kind}.wav", music(1.0, 22050, seed=9), 22050,
                       "WAV", "PCM_16")  # fmt: skip
    return InputFile(str(path), path.stat().st_size)


def _gone(pid: int, wait_s: float = 10.0) -> bool:
    """The process has ended (a zombie nobody reaps, as under a container's init, counts)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _children(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(x) for x in children.split()}


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("struct", "decode_failed: error: unpack requires a buffer of 4 bytes"),
        ("type", "decode_failed: TypeError: 'NoneType' object is not subscriptable"),
        ("index", "decode_failed: IndexError: list index out of range"),
        ("custom", "decode_failed: LibraryOwnError: bad frame header at byte 417"),
        ("stderr", "not_audio: ffmpeg: x.mp3: Invalid data found when processing input"),
        ("segv", "crashed: took its decode process down 2 times (SIGSEGV, SIGSEGV)"),
        (
            "oom",
            "unsupported: ran out of memory at its * MB address-space limit "
            "(max_memory_mb=200 over the decode process's start, or spark.executor.pyspark.memory)",
        ),
    ],
)
def test_a_bad_file_is_one_line_and_the_next_file_decodes(
    hostile: Path, kind: str, error: str
) -> None:
    cfg = PipelineConfig(max_memory_mb=200)
    good_before, bad, good_after = _good(hostile, 1), _bad(hostile, kind), _good(hostile, 2)
    with DecodeProcess(cfg) as files:
        first = files.process(good_before)
        record, line = files.process(bad)
        after, after_line = files.process(good_after)
    assert record is None and line["status"] == "error"
    assert fnmatch.fnmatchcase(line["error"], error), line["error"]
    assert line["source"] == bad.source and line["track_id"] == "900001-hostile-" + kind
    # the good files are exactly what the pipeline makes in this process
    for got, item in ((first, good_before), ((after, after_line), good_after)):
        want = process_file(item, PipelineConfig())
        assert got[1] == want[1]
        assert got[0] is not None and want[0] is not None
        assert got[0].keys() == want[0].keys()  # and in the same order
        np.testing.assert_array_equal(got[0]["codes"], want[0]["codes"])
        assert got[0]["codes"].dtype == np.uint8


@pytest.mark.parametrize("kind", ["pause", "socket"])
def test_a_call_that_never_returns_is_a_timeout(hostile: Path, kind: str) -> None:
    cfg = PipelineConfig(timeout_s=1.0)
    with DecodeProcess(cfg) as files:
        t0 = time.monotonic()
        record, line = files.process(_bad(hostile, kind))
        waited = time.monotonic() - t0
        assert record is None
        assert line["error"] == (
            "timeout: not decoded within 1 s (stuck; its decode process was killed)"
        )
        assert cfg.timeout_s + GRACE_S <= waited < cfg.timeout_s + GRACE_S + 5
        record, line = files.process(_good(hostile, 3))
        assert record is not None and line["status"] == "ok"
        assert files.restarts == 1


def test_a_worker_killed_once_by_something_else_is_retried(hostile: Path) -> None:
    with DecodeProcess(PipelineConfig()) as files:
        record, line = files.process(_bad(hostile, "segv-once"))
    assert record is not None and line["status"] == "ok", line
    assert (hostile / "900001-hostile-segv-once.wav.seen").exists()


def test_a_stuck_ffmpeg_is_killed_with_its_decode_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ffmpeg that never writes: the decode process blocks in read(2) on its pipe; both go."""
    script = tmp_path / "ffmpeg"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/ffmpeg.pid\nexec sleep 3600\n")
    script.chmod(0o755)
    monkeypatch.setenv("FMAPREP_FFMPEG", str(script))
    with DecodeProcess(PipelineConfig(decoder="ffmpeg", timeout_s=0.5)) as files:
        record, line = files.process(_good(tmp_path, 4))
    assert record is None and line["error"].startswith("timeout: ")
    ffmpeg = int((tmp_path / "ffmpeg.pid").read_text())
    assert _gone(ffmpeg)


def test_the_decode_process_dies_with_its_worker(tmp_path: Path) -> None:
    """A worker killed with SIGKILL while its decode process is stuck leaves nothing behind."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / "tests" / "hostile")!r})
        from fmaprep.audio import decode
        from sitecustomize import hostile_opener
        decode.OPENERS["soundfile"] = hostile_opener(decode.OPENERS["soundfile"])
        from fmaprep.config import PipelineConfig
        from fmaprep.isolation import DecodeProcess
        from fmaprep.model import InputFile
        files = DecodeProcess(PipelineConfig()).__enter__()
        print("ready", flush=True)
        files.process(InputFile({str(_bad(tmp_path, "pause").source)!r}, 1))
    """)  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    time.sleep(0.5)
    [child] = _children(worker.pid)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert _gone(child)


def test_isolation_none_decodes_in_the_worker(hostile: Path) -> None:
    from fmaprep.isolation import run_files

    with run_files(PipelineConfig(isolation="none")) as files:
        record, line = files.process(_good(hostile, 5))
        assert record is not None and line["status"] == "ok"
        assert not any(_is_decode_process(pid) for pid in _children(os.getpid()))


def _is_decode_process(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("fmaprep-decode")
    except FileNotFoundError:
        return False


def test_the_worker_keeps_its_decode_process_for_its_next_task(hostile: Path) -> None:
    """Spark reuses a Python worker for many tasks: one decode process serves them all while
    the settings are the same; other settings, or a task that failed mid-file, start anew."""
    from fmaprep.isolation import run_files

    cfg = PipelineConfig()
    with run_files(cfg) as first:
        assert first.process(_good(hostile, 6))[0] is not None
        pid = first.pid
    with run_files(cfg) as second:
        assert second.pid == pid
        assert second.process(_good(hostile, 7))[0] is not None
    with run_files(PipelineConfig(channel="right")) as other:
        assert other.pid != pid and other.pid is not None
        assert _gone(pid)
        pid = other.pid
    with pytest.raises(KeyboardInterrupt), run_files(PipelineConfig(channel="right")) as failed:
        assert failed.pid == pid
        raise KeyboardInterrupt
    assert _gone(pid)
    with run_files(PipelineConfig(channel="right")) as fresh:
        assert fresh.pid not in (pid, None)
        fresh.close()


def test_the_kill_path_works_right_after_a_fork() -> None:
    """An interrupt can arrive the moment after the fork, before the decode process has its own
    process group: killing it then must still end it and never wait for it without bound.
    Forks in a loop, killed after 0 to 2 ms (the kill lands before, during and after the
    child's setpgid); the loop runs in a thread so a hang fails the test instead of the run."""
    import random
    import threading

    cfg = PipelineConfig()
    pids: list[int] = []
    rng = random.Random(27)

    def forks() -> None:
        for _ in range(60):
            files = DecodeProcess(cfg)
            files.ensure_started()
            pid = files.pid
            assert pid is not None
            pids.append(pid)
            delay = rng.choice([0.0, 0.0, 0.0005, 0.002])
            if delay:
                time.sleep(delay)
            files._kill()  # what process() does when interrupted mid-exchange

    worker = threading.Thread(target=forks, daemon=True)
    worker.start()
    worker.join(180)
    assert not worker.is_alive(), f"the kill path hung after {len(pids)} forks"
    assert len(pids) == 60 and all(_gone(pid) for pid in pids)
