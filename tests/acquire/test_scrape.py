"""The scraper against a hostile fake FMA on loopback (see conftest.py)."""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.dest import Destination, TrackWriter, open_destination
from fmaprep.acquire.http import USER_AGENT
from fmaprep.acquire.scrape import ScrapeConfig, scrape, sniff_audio
from fmaprep.cli import scrape as scrape_cli
from fmaprep.progress import Progress

from .conftest import FakeFMA, FakeTrack, quick_config

BATCH, PAUSE, MIN_DELAY = 3, 0.4, 0.05


def lines(dest: Path) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for raw in (dest / "_tracks.jsonl").read_text().splitlines():
        line = json.loads(raw)
        latest[line["id"]] = line
    return latest


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def hostile_site(tones: list[bytes]) -> FakeFMA:
    kinds = [
        (2, "ok"),
        (5, "no_file_url"),
        (7, "playback_only"),
        (11, "html"),
        (13, "truncated_once"),
        (17, "error500_once"),
        (19, "traversal"),
        ("12a", "bad_id"),
        (23, "disallowed"),
        (27, "foreign"),
        (29, "ok"),
        (31, "ok"),
        (37, "ok"),  # beyond the limit: must not be fetched
    ]
    tracks = [FakeTrack(tid, tones[i], kind) for i, (tid, kind) in enumerate(kinds)]
    # the server's own rule, which the throttle below keeps to: <= BATCH downloads per PAUSE
    return FakeFMA(tracks, page_size=4, burst=BATCH, window=PAUSE * 0.75)


def config(site: FakeFMA, dest: Path, **overrides: Any) -> ScrapeConfig:
    """A scrape that keeps to the site's rate rule (batches of BATCH, PAUSE between them)."""
    polite = dict(limit=8, batch_size=BATCH, pause=PAUSE, min_delay=MIN_DELAY, retries=3,
                  backoff=0.05, page_size=20, deadline=300)  # fmt: skip
    return quick_config(site, dest, **(polite | overrides))


GOOD = [2, 5, 7, 13, 17, 19, 29, 31]


def test_hostile_site_scrape_then_rerun(serve: Any, tones: list[bytes], tmp_path: Path) -> None:
    site = serve(hostile_site(tones))
    dest = tmp_path / "dest"
    summary = scrape(config(site, dest))
    by_id = site.by_id()

    # the right files arrive intact, under the id-only layout
    assert summary.downloaded == 8, summary.text()
    for tid in GOOD:
        track = by_id[str(tid)]
        path = dest / track.id6[:3] / f"{track.id6}.mp3"
        assert sha1(path) == track.sha1, tid
    expected = {f"000/{by_id[str(t)].id6}.mp3" for t in GOOD} | {"_tracks.jsonl"}
    assert files_under(dest) == expected  # no partial, no passwd, no HTML page, no 000037
    assert not any(p.name == "passwd" for p in tmp_path.rglob("*"))
    assert site.count("/files/37.mp3") == 0

    # hostile items: HTML rejected, robots obeyed, a non-integer id never used
    meta = lines(dest)
    assert meta["000011"]["status"] == "error" and "not_audio" in meta["000011"]["error"]
    assert meta["000023"]["status"] == "error" and "robots" in meta["000023"]["error"]
    assert site.count("/private/") == 0
    assert meta["000027"]["status"] == "error" and "host_not_allowed" in meta["000027"]["error"]
    assert site.count("/files/27.mp3") == 0
    assert site.count("/files/12a") == 0 and summary.rejected == 1
    ok = meta["000019"]
    assert ok["status"] == "ok" and ok["bytes"] == len(by_id["19"].audio)
    assert ok["sha1"] == by_id["19"].sha1 and ok["path"] == "000/000019.mp3"
    assert ok["artist"] == "Synth <Artist> & Co" and ok["genre"] == "Test"
    assert set(ok) >= {
        "id",
        "title",
        "artist",
        "album",
        "genre",
        "urls",
        "bytes",
        "sha1",
        "fetched_at",
        "status",
    }
    assert meta["000007"]["urls"]["final"].endswith("/files/7.mp3")  # via playbackUrl
    assert [h.status for h in site.hits if h.path == "/files/17.mp3"] == [500, 200]
    assert [h.status for h in site.hits if h.path == "/files/13.mp3"] == [200, 200]  # cut, whole
    assert site.count("/track/track-5/") == 1 and site.count("/play/7") == 1

    # politeness, seen from the server
    assert {h.user_agent for h in site.hits} == {USER_AGENT}
    assert not [h for h in site.hits if h.status == 429]
    times = sorted(h.at for h in site.hits)
    # min_delay, seen at the server: any window of 5 * MIN_DELAY holds at most 6 requests, and
    # consecutive requests are MIN_DELAY apart, but for a rare gap or two squeezed by the
    # server's own scheduling jitter (the server shares a GIL with the client)
    window = 5 * MIN_DELAY
    assert max(sum(t <= u < t + window for u in times) for t in times) <= 6 + 1
    squeezed = [b - a for a, b in itertools.pairwise(times) if b - a < 0.8 * MIN_DELAY]
    assert len(squeezed) <= 2, squeezed
    audio = sorted(h.at for h in site.audio_hits())
    groups = [[audio[0]]]
    # a batch's downloads are a few MIN_DELAY apart (pages between them); a pause is PAUSE: the
    # split sits at 0.6 * PAUSE, as a late server stamp (~100 ms on a loaded host) shortens one
    for previous, current in itertools.pairwise(audio):
        if current - previous >= PAUSE * 0.6:
            groups.append([])
        groups[-1].append(current)
    assert max(len(g) for g in groups) <= BATCH, [len(g) for g in groups]
    assert len(groups) >= len(audio) // BATCH

    # a second run downloads nothing (not even the known-bad tracks)
    before = len(site.audio_hits())
    again = scrape(config(site, dest))
    assert again.downloaded == 0 and again.skipped == 8 and again.known_bad == 3
    assert len(site.audio_hits()) == before
    assert files_under(dest) == expected


def test_429_retry_after_is_honoured(
    serve: Any, tones: list[bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = serve(
        FakeFMA(
            [FakeTrack(i + 1, tones[i]) for i in range(5)],
            page_size=10,
            burst=2,
            window=1.0,
            retry_after=1,
        )
    )
    caplog.set_level("WARNING")
    summary = scrape(
        config(
            site,
            tmp_path,
            limit=5,
            batch_size=10,
            pause=0,
            min_delay=0.01,
            concurrency=1,
            retries=4,
        )
    )
    assert summary.downloaded == 5
    for track in site.tracks:
        assert sha1(tmp_path / "000" / f"{track.id6}.mp3") == track.sha1
    audio = site.audio_hits()
    limited = [i for i, h in enumerate(audio) if h.status == 429]
    assert limited, "the burst should have been answered with 429"
    for i in limited:
        assert audio[i + 1].at - audio[i].at >= 0.95  # Retry-After: 1
    assert "attempt 1 of 4" in caplog.text


class _Boom(BaseException):
    pass


class _FailingDestination(Destination):
    """Raises (like a Ctrl-C) after some bytes of one track have been written."""

    def __init__(self, root: Path, victim: str) -> None:
        local = open_destination(str(root))
        super().__init__(local.store, local.uri)
        self.victim = victim

    def writer(self, key: str) -> TrackWriter:
        inner = super().writer(key)
        if not key.endswith(self.victim):
            return inner
        original = inner.write

        def write(data: bytes) -> None:
            original(data[:100])
            raise _Boom("interrupted mid-download")

        inner.write = write  # type: ignore[method-assign]
        return inner


def test_interrupted_in_process_resumes(serve: Any, tones: list[bytes], tmp_path: Path) -> None:
    site = serve(FakeFMA([FakeTrack(i + 1, tones[i]) for i in range(4)], page_size=10))
    cfg = config(site, tmp_path, limit=4, concurrency=1, pause=0)
    with pytest.raises(_Boom):
        scrape(cfg, dest=_FailingDestination(tmp_path, "000003.mp3"))
    assert files_under(tmp_path) == {"000/000001.mp3", "000/000002.mp3", "_tracks.jsonl"}
    summary = scrape(cfg)
    assert (summary.downloaded, summary.skipped) == (2, 2)
    for track in site.tracks:
        assert sha1(tmp_path / "000" / f"{track.id6}.mp3") == track.sha1
    assert site.count("/files/1.mp3") == 1


# (the child gets Python's own SIGINT handler even when this test runs with SIGINT ignored, as
# a background job of a non-interactive shell does: it would inherit SIG_IGN, and a Ctrl-C test
# would then wait for a download the signal never reached)
RUNNER = textwrap.dedent(
    """
    import argparse, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from fmaprep.cli import scrape
    parser = argparse.ArgumentParser()
    scrape.add_arguments(parser)
    sys.exit(scrape.run(parser.parse_args(sys.argv[1:])))
    """
)


def cli_args(site: FakeFMA, dest: Path, *extra: str) -> list[str]:
    return [
        "--base-url", site.base_url, "--genre", "Test", "--dest", str(dest),
        "--limit", "4", "--pause", "0.2", "--batch-size", "20", "--min-delay", "0.02",
        "--concurrency", "1", "--retries", "2", "--no-progress", *extra,
    ]  # fmt: skip


def test_killed_subprocess_resumes_cleanly(serve: Any, tones: list[bytes], tmp_path: Path) -> None:
    tracks = [
        FakeTrack(2, tones[0]),
        FakeTrack(3, tones[1]),
        FakeTrack(4, tones[2], "slow"),
        FakeTrack(5, tones[3]),
    ]
    site = serve(FakeFMA(tracks, page_size=10))
    dest = tmp_path / "dest"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *cli_args(site, dest)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert site.half_sent.wait(timeout=60), "the download never started"
        staged = [Path(p.removeprefix("file://")) for p in open_destination(str(dest)).leftovers()]
        assert files_under(dest) - {p.relative_to(dest).as_posix() for p in staged} == {
            "000/000002.mp3",
            "000/000003.mp3",
            "_tracks.jsonl",
        }
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not (dest / "000" / "000004.mp3").exists()  # nothing partial where it counts
    tracks[2].kind = "ok"
    site.gate.set()

    args = argparse.ArgumentParser()
    scrape_cli.add_arguments(args)
    assert scrape_cli.run(args.parse_args(cli_args(site, dest))) == 0
    for track in tracks:
        assert sha1(dest / "000" / f"{track.id6}.mp3") == track.sha1
    assert files_under(dest) == {f"000/00000{i}.mp3" for i in (2, 3, 4, 5)} | {"_tracks.jsonl"}
    assert site.count("/files/2.mp3") == 1 and site.count("/files/4.mp3") == 2
    assert [line["status"] for line in lines(dest).values()] == ["ok"] * 4


def test_cli_refuses_relative_destination(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    scrape_cli.add_arguments(parser)
    args = parser.parse_args(["--genre", "Rock", "--dest", "relative/dir", "--no-progress"])
    assert scrape_cli.run(args) == 2
    assert "absolute" in capsys.readouterr().err


def test_cli_reports_failures_with_exit_1(
    serve: Any, tones: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0]), FakeTrack(2, tones[1], "html")], page_size=10))
    parser = argparse.ArgumentParser()
    scrape_cli.add_arguments(parser)
    assert scrape_cli.run(parser.parse_args(cli_args(site, tmp_path))) == 1
    err = capsys.readouterr().err
    assert "1 downloaded" in err and "failed 000002: not_audio" in err


@pytest.mark.parametrize(
    ("tracks", "limit", "status", "says"),
    [
        # the limit reached past a bad candidate: done, and the skip is still reported
        ([(1, "ok"), (2, "html"), (3, "ok")], 2, 0, "failed 000002: not_audio"),
        # fewer tracks listed than asked for, all fetched: done
        ([(1, "ok"), (3, "ok")], 4, 0, "the listing had 2 tracks, fewer than the 4 asked for"),
        # a bad candidate and the limit not reached: missing
        ([(1, "ok"), (2, "html")], 4, 1, "missing: 3 of the 4 tracks asked for"),
    ],
)
def test_exit_status_says_whether_what_was_asked_for_is_present(
    serve: Any,
    tones: list[bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tracks: list[tuple[int, str]],
    limit: int,
    status: int,
    says: str,
) -> None:
    site = serve(FakeFMA([FakeTrack(t, tones[i], k) for i, (t, k) in enumerate(tracks)],
                         page_size=10))  # fmt: skip
    parser = argparse.ArgumentParser()
    scrape_cli.add_arguments(parser)
    args = [*cli_args(site, tmp_path), "--limit", str(limit)]
    assert scrape_cli.run(parser.parse_args(args)) == status
    err = capsys.readouterr().err
    assert says in err
    assert "failed 000002: not_audio" in err or all(k == "ok" for _, k in tracks)


@pytest.mark.parametrize(
    ("head", "ctype", "ok"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg", True),
        (b"\xff\xfb\x90\x64\x00", "application/octet-stream", True),
        (b"\xff\xfb\x90\x64\x00", "text/html; charset=utf-8", False),
        (b"<!DOCTYPE html><html>", "audio/mpeg", False),
        (b"\x00\x00\x00\x18ftypmp42", "", False),
        (b"\xff\xe0\x00\x00", "", False),  # frame sync with a reserved layer
    ],
)
def test_sniff_audio(head: bytes, ctype: str, ok: bool) -> None:
    assert (sniff_audio(head, ctype) is None) is ok


def test_progress_bar_shows_tracks_bytes_and_pause(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    site = serve(FakeFMA([FakeTrack(i + 1, tones[i]) for i in range(3)], page_size=10))
    stream = io.StringIO()
    cfg = config(site, tmp_path, limit=3, batch_size=2, pause=0.3, concurrency=1)
    progress = Progress(3, stream=stream, enabled=True)
    scrape(cfg, progress=progress)
    frames = stream.getvalue().split("\r")
    assert any("pausing" in frame for frame in frames)
    assert frames[-1].startswith("[" + "#" * 20 + "] 3/3 tracks, ")
    assert "KiB" in frames[-1] and stream.getvalue().endswith("\n")


def test_ctrl_c_mid_download_ends_fast_and_the_rerun_fetches_only_the_rest(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    tracks = [
        FakeTrack(2, tones[0]),
        FakeTrack(3, tones[1]),
        FakeTrack(4, tones[2], "slow"),  # half its body, then nothing until the gate opens
        FakeTrack(5, tones[3]),
    ]
    site = serve(FakeFMA(tracks, page_size=10))
    dest = tmp_path / "dest"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *cli_args(site, dest, "--concurrency", "2")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert site.half_sent.wait(timeout=60), "the download never started"
        waited = time.monotonic()
        while not (dest / "000" / "000005.mp3").exists():  # the other download finishes
            assert time.monotonic() - waited < 60 and proc.poll() is None
            time.sleep(0.05)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert took < 10, took  # the slow body was cut, not waited for (it would take 30 s)
    assert b"Traceback" not in err and b"interrupted" in err
    recorded = lines(dest)
    assert {tid for tid, line in recorded.items() if line["status"] == "ok"} == {
        "000002",
        "000003",
        "000005",
    }
    assert "000004" not in recorded and not (dest / "000" / "000004.mp3").exists()

    tracks[2].kind = "ok"
    site.gate.set()
    args = argparse.ArgumentParser()
    scrape_cli.add_arguments(args)
    assert scrape_cli.run(args.parse_args(cli_args(site, dest))) == 0
    assert [site.count(f"/files/{i}.mp3") for i in (2, 3, 4, 5)] == [1, 1, 2, 1]
    for track in tracks:
        assert sha1(dest / "000" / f"{track.id6}.mp3") == track.sha1


@pytest.mark.slow
def test_ctrl_c_at_random_moments_always_exits_130_within_seconds(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    """Ctrl-C at seeded random moments of a run (robots.txt, listing, downloads starting,
    finishing, cut mid-body, being recorded): each run exits 130 within seconds, retries
    nothing, records no cancelled track as failed, and records every track it stored."""
    rng = random.Random(26)
    for moment in range(6):
        tracks = [FakeTrack(tid, tones[i], "slow" if tid == 4 else "ok")
                  for i, tid in enumerate(range(2, 9))]  # fmt: skip
        site = serve(FakeFMA(tracks, page_size=10))
        dest = tmp_path / f"dest{moment}"
        args = cli_args(site, dest, "--concurrency", "2", "--limit", "7", "--min-delay", "0.1")
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        delay = rng.uniform(0.0, 1.2)
        try:
            started = time.monotonic()
            while not site.hits:  # Python is up, its handler installed: the run has begun
                assert time.monotonic() - started < 60 and proc.poll() is None
                time.sleep(0.01)
            time.sleep(delay)
            interrupted = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            took = time.monotonic() - interrupted
        finally:
            site.gate.set()  # (the slow body's handler thread ends)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        where = f"moment {moment} ({delay:.2f}s after the first request): {err.decode()}"
        assert proc.returncode == 130, where
        assert took < 10, (took, where)
        assert b"Traceback" not in err and b"retrying" not in err, where
        recorded = lines(dest) if (dest / "_tracks.jsonl").exists() else {}
        assert all(line["status"] == "ok" for line in recorded.values()), where
        stored = {p.stem for p in dest.glob("000/*.mp3")}
        assert set(recorded) == stored, where  # every track stored is recorded, and no other
        assert "000004" not in stored, where
        for track in tracks:
            if track.id6 in stored:
                assert sha1(dest / "000" / f"{track.id6}.mp3") == track.sha1, where


# RUNNER, with track 4's storage write never returning (a hung NFS or object store: a place
# the cancel cannot reach); $STUCK_MARK is created when the write starts
STUCK_RUNNER = (
    textwrap.dedent(
        """
    import os, pathlib, threading
    from fmaprep.acquire.dest import Destination
    real = Destination.writer
    def writer(self, key):
        opened = real(self, key)
        if key.endswith("000004.mp3"):
            def write(data):
                pathlib.Path(os.environ["STUCK_MARK"]).touch()
                threading.Event().wait()
            opened.write = write
        return opened
    Destination.writer = writer
    """
    )
    + RUNNER
)


def test_ctrl_c_ends_the_run_even_when_a_download_ignores_the_cancel(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    tracks = [FakeTrack(tid, tones[i]) for i, tid in enumerate(range(2, 7))]
    site = serve(FakeFMA(tracks, page_size=10))
    dest, mark = tmp_path / "dest", tmp_path / "stuck"
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_RUNNER, *cli_args(site, dest, "--concurrency", "2")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"STUCK_MARK": str(mark)},
    )
    try:
        started = time.monotonic()
        while not mark.exists():
            assert time.monotonic() - started < 60 and proc.poll() is None
            time.sleep(0.05)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert took < 15, took  # (5 s of grace for downloads to end, then the process exits)
    assert b"Traceback" not in err and b"interrupted" in err
    assert "000004" not in lines(dest) and not (dest / "000" / "000004.mp3").exists()


@pytest.mark.parametrize("kind", ["file", "under_a_file", "bad_base_url"])
def test_cli_bad_destination_or_base_url_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    dest = {"file": afile, "under_a_file": afile / "sub"}.get(kind, tmp_path / "d")
    parser = argparse.ArgumentParser()
    scrape_cli.add_arguments(parser)
    argv = ["--genre", "Rock", "--dest", str(dest), "--no-progress"]
    if kind == "bad_base_url":
        argv += ["--base-url", "http://127.0.0.1:9\\@example.org/"]
    assert scrape_cli.run(parser.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmaprep scrape: ") and len(err.splitlines()) == 1
    assert afile.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_cli_unwritable_destination_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    parser = argparse.ArgumentParser()
    scrape_cli.add_arguments(parser)
    args = ["--genre", "Rock", "--dest", str(locked / "fma"), "--no-progress"]
    assert scrape_cli.run(parser.parse_args(args)) == 2
    assert "cannot write" in capsys.readouterr().err


def test_site_text_reaches_the_terminal_escaped(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    escape = "\x1b]0;owned\x07\x1b[2J\r"
    tracks = [
        FakeTrack(1, tones[0], title=escape),
        FakeTrack(f"9{escape}", tones[1]),  # an id that is not one
        FakeTrack(3, tones[2], file_url=f"/files/{escape}.mp3"),
        FakeTrack(4, tones[3], file_url=f"http://evil.example/{escape}?token=s3cret"),
    ]
    site = serve(FakeFMA(tracks, page_size=10))
    main = "import sys; from fmaprep.cli import main; sys.exit(main())"
    run = subprocess.run(
        [sys.executable, "-c", main, "-v", "scrape", *cli_args(site, tmp_path)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stderr.decode()
    assert b"\x1b" not in run.stderr and b"\x07" not in run.stderr and b"\r" not in run.stderr
    assert b"\\x1b" in run.stderr  # shown, not obeyed
    assert b"s3cret" not in run.stderr
