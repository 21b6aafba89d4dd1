"""fmaprep.progress, the one progress facility: counts, rate and ETA on the line; drawn in
place on a terminal, logged at an interval elsewhere; fed by pushes or by a poll."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from fmaprep.job.progress import Progress as JobProgress
from fmaprep.progress import Progress, duration, human_bytes


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_units() -> None:
    assert [human_bytes(n) for n in (512, 1536, 5 * 2**20, 3 * 2**30)] == [
        "512 B", "1.5 KiB", "5.0 MiB", "3.0 GiB",
    ]  # fmt: skip
    assert [duration(s) for s in (59, 61, 3600 * 3 + 60 * 7)] == ["0m59s", "1m01s", "3h07m"]


def test_files_of_a_known_total_show_rate_and_eta() -> None:
    clock, stream = _Clock(), io.StringIO()
    progress = Progress(10, stream=stream, enabled=True, clock=clock, unit="files")
    clock.now += 20.0
    progress.set(4, 1)  # 4 finished in 20 s, one of them failed: 6 to go at 0.2/s is 30 s
    assert (
        stream.getvalue() == "\r[########------------] 4/10 files, 1 failed, 0.2 files/s, ETA 0m30s"
    )
    clock.now += 30.0
    progress.set(10, 1)
    progress.close()
    assert stream.getvalue().endswith(
        "\r[####################] 10/10 files, 1 failed, 0.2 files/s\n"
    )


def test_off_a_terminal_the_line_is_logged_at_intervals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    progress = Progress(100, stream=io.StringIO(), enabled=False, log_every=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="fmaprep.progress"):
        for _ in range(35):  # 35 s, a track a second: logged at 10, 20 and 30 s
            clock.now += 1.0
            progress.add(tracks=1, nbytes=2**20)
        progress.close()  # and the last state
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[0].startswith("progress: [##------------------] 10/100 tracks, 10.0 MiB")
    assert lines[-1].startswith("progress: [#######-------------] 35/100 tracks, 35.0 MiB")


def test_the_job_line_follows_its_poll_to_the_end(caplog: pytest.LogCaptureFixture) -> None:
    counts = [0, 0]
    polled = threading.Event()

    def poll() -> tuple[int, int]:
        polled.set()
        return counts[0], counts[1]

    job = JobProgress(3, poll, stream=io.StringIO(), interval=0.01, log_interval=3600.0)
    with caplog.at_level(logging.INFO, logger="fmaprep.progress"), job:
        assert polled.wait(30)  # the thread is polling
        counts[:] = [3, 1]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["progress: [####################] 3/3 files, 1 failed"]  # only the end
