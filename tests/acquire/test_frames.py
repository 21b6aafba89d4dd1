"""The MPEG frame check the scraper runs over every body: real mp3s (LAME, via libsndfile) pass
in any chunking; what only starts like one, or was cut short, does not."""

from __future__ import annotations

import random

import pytest

from fmaprep.audio.frames import FrameCheck, frame_at

from .conftest import make_mp3


def verdict(body: bytes, chunk: int = 4096) -> str | None:
    check = FrameCheck()
    for start in range(0, len(body), chunk):
        check.feed(body[start : start + chunk])
    return check.problem()


@pytest.fixture(scope="module")
def mp3() -> bytes:
    return make_mp3(330.0, seconds=1.0)


@pytest.mark.parametrize("chunk", [1, 3, 417, 4096, 1 << 20])
def test_real_mp3_passes_in_any_chunking(mp3: bytes, chunk: int) -> None:
    assert verdict(mp3, chunk) is None


def test_tags_around_the_frames_are_fine(mp3: bytes) -> None:
    id3v2 = b"ID3\x03\x00\x00\x00\x00\x01\x00" + b"\x00" * 128  # a 138-byte tag (syncsafe 128)
    id3v1 = b"TAG" + b"t" * 125
    assert verdict(id3v2 + mp3 + id3v1) is None
    # a tag with 600 KB of cover art: not "no frame in the first 256 KiB"
    art = 600_000
    size = bytes((art >> shift) & 0x7F for shift in (21, 14, 7, 0))
    big = b"ID3\x03\x00\x00" + size + b"\x89PNG" + b"\x00" * (art - 4)
    check = FrameCheck()
    for start in range(0, len(big + mp3), 65536):
        check.feed((big + mp3)[start : start + 65536])
        assert check.hopeless() is None
    assert check.problem() is None


def test_frame_lengths_follow_the_standard() -> None:
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 144 * 128000 / 44100 = 417 bytes (+1 padded)
    assert frame_at(b"\xff\xfb\x90\x00", 0) == (417, (3, 1, 0, 2))
    assert frame_at(b"\xff\xfb\x92\xc0", 0) == (418, (3, 1, 0, 1))
    # MPEG-2 Layer III, 64 kbit/s, 22.05 kHz: 72 * 64000 / 22050 = 208 bytes
    assert frame_at(b"\xff\xf3\x80\x00", 0) == (208, (2, 1, 0, 2))
    # Layer I, 32 kbit/s, 44.1 kHz: (12 * 32000 / 44100) * 4 = 32 bytes
    assert frame_at(b"\xff\xff\x10\x00", 0) == (32, (3, 3, 0, 2))
    for bad in (b"\xff\xfb\x00\x00", b"\xff\xfb\xf0\x00", b"\xff\xfb\x9c\x00", b"\xff\xe9\x90\x00"):
        assert frame_at(bad, 0) is None  # free format, bad bitrate, bad rate, reserved layer


def test_fakes_and_cuts_fail(mp3: bytes) -> None:
    noise = random.Random(7).randbytes(200_000)
    assert "frames" in (verdict(b"ID3\x04\x00\x00<html><body>" + b"x" * 9000) or "")
    assert verdict(b"\xff\xfb\x90\x64" + noise) is not None
    assert verdict(mp3[:417] + noise[:20_000] + mp3[417:]) is not None  # noise inside
    assert "cut short" in (verdict(mp3[: len(mp3) // 2 + 5]) or "")  # mid-frame
    header = frame_at(mp3, 0)
    assert header is not None
    whole_frames = mp3[: header[0] * 10]  # ten whole frames of the many the Info tag declares
    assert "cut short" in (verdict(whole_frames) or "")
    assert verdict(b"") is not None and verdict(mp3[:4]) is not None


def test_a_hopeless_body_is_known_early() -> None:
    check = FrameCheck()
    check.feed(b"<html>" + b"x" * (300 * 1024))
    assert check.hopeless() is not None
