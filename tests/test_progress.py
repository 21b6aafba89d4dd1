"""fmaprep.progress: the acquisition bar's rate and ETA and its log line a minute off a terminal;
the job's polled line, redrawn in place on a terminal and written as lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from fmaprep.progress import JobProgress, Progress


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bytes_of_a_known_total_show_rate_and_eta() -> None:
    clock, stream = _Clock(), io.StringIO()
    progress = Progress(None, stream=stream, enabled=True, clock=clock)
    progress.total_bytes = 100 * 2**20
    clock.now += 10.0
    progress.add(nbytes=25 * 2**20)  # 2.5 MiB/s: 75 MiB to go is 30 s
    assert stream.getvalue().endswith("25.0 MiB, 2.5 MiB/s of 100.0 MiB, ETA 0m30s")


def test_tracks_of_a_known_total_show_an_eta() -> None:
    clock, stream = _Clock(), io.StringIO()
    progress = Progress(10, stream=stream, enabled=True, clock=clock)
    clock.now += 7200.0
    progress.add(tracks=4, nbytes=4096)  # 30 min a track: 6 to go is 3 h
    assert stream.getvalue().rstrip().endswith("ETA 3h00m")


def test_off_a_terminal_the_line_is_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    progress = Progress(None, stream=io.StringIO(), enabled=False, clock=clock)
    progress.total_bytes = 2**30
    with caplog.at_level(logging.INFO, logger="fmaprep.progress"):
        for _ in range(180):  # three minutes, a MiB a second
            clock.now += 1.0
            progress.add(nbytes=2**20)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("progress: [") and "1.0 MiB/s of 1.0 GiB, ETA " in lines[0]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_the_job_line_redraws_on_a_terminal_and_is_written_as_lines_elsewhere(tty: bool) -> None:
    stream = _Terminal() if tty else io.StringIO()
    with JobProgress(4, lambda: (3, 1), stream=stream, interval=0.01, log_interval=0.01):
        pass
    text = stream.getvalue()
    assert text.endswith("\n") and "preprocess: 3/4 files (75%), 1 failed" in text
    if tty:  # each redraw replaces the line; the last one ends it
        assert text.startswith("\rpreprocess: ") and text.count("\n") == 1
    else:
        assert "\r" not in text and "\x1b" not in text
