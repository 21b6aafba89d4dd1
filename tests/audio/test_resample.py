"""Resampler quality (DESIGN.md contract 8) measured on closed-form tones."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from fmaprep.audio.resample import RESAMPLERS, get_resampler

SR_OUT = 8000


def _tone(freq: float, sr: int, seconds: float = 2.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _level_db(y: np.ndarray, freq: float, amplitude: float, sr: int = SR_OUT) -> float:
    """Amplitude of the sinusoid at ``freq`` in ``y`` (least squares, edges skipped) in dB re
    ``amplitude``."""
    edge = sr // 4
    mid = y[edge:-edge].astype(np.float64)
    t = np.arange(edge, len(y) - edge) / sr
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, mid, rcond=None)
    return float(20 * np.log10(max(float(np.hypot(*coef)), 1e-20) / amplitude))


def _rms_db(y: np.ndarray, amplitude: float, sr: int = SR_OUT) -> float:
    mid = y[sr // 4 : -sr // 4].astype(np.float64)
    return float(
        20 * np.log10(max(float(np.sqrt(np.mean(mid**2)) * np.sqrt(2)), 1e-20) / amplitude)
    )


@pytest.mark.parametrize("name", sorted(RESAMPLERS))
@pytest.mark.parametrize("sr_in", [44100, 48000, 22050])
def test_1khz_keeps_level_within_0_1_db(name: str, sr_in: int) -> None:
    y = get_resampler(name)(_tone(1000, sr_in), sr_in, SR_OUT)
    assert abs(_level_db(y, 1000, 0.5)) <= 0.1


@pytest.mark.parametrize(
    "name",
    [
        "soxr",
        pytest.param(
            "resampy",
            marks=pytest.mark.xfail(
                strict=True,
                reason="known: resampy kaiser_best rolls off early (about -2.2 dB at 3.6 kHz "
                "for 44.1 -> 8 kHz); kept only as the original design's choice",
            ),
        ),
    ],
)
def test_passband_flat_to_3_6_khz(name: str) -> None:
    for freq in (100, 500, 2000, 3000, 3600):
        y = get_resampler(name)(_tone(freq, 44100), 44100, SR_OUT)
        assert abs(_level_db(y, freq, 0.5)) <= 0.1, f"{freq} Hz"


@pytest.mark.parametrize("name", sorted(RESAMPLERS))
@pytest.mark.parametrize("freq", [4200, 5000, 9000, 15000])
def test_stopband_at_least_90_db_down(name: str, freq: int) -> None:
    """Above 4 kHz nothing may fold back: the whole output is noise floor, >= 90 dB down."""
    y = get_resampler(name)(_tone(freq, 44100), 44100, SR_OUT)
    assert _rms_db(y, 0.5) <= -90.0


@pytest.mark.parametrize("name", sorted(RESAMPLERS))
@pytest.mark.parametrize(
    ("n", "sr_in"), [(44100, 44100), (12345, 44100), (999, 48000), (7, 22050), (16000, 16000)]
)
def test_output_length(name: str, n: int, sr_in: int) -> None:
    x = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    y = get_resampler(name)(x, sr_in, SR_OUT)
    assert y.dtype == np.float32
    assert abs(len(y) - round(n * SR_OUT / sr_in)) <= 1


def test_unknown_resampler_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown resampler 'nope'"):
        get_resampler("nope")


def test_the_numba_cache_is_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmaprep.audio.resample import ensure_numba_cache_dir

    cache = tmp_path / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    assert ensure_numba_cache_dir() == str(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert cache.stat().st_uid == os.getuid()


def test_the_numba_cache_default_is_per_user_and_the_same_for_local_executors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One default everywhere: what a worker picks itself is what a local session gives its
    executors; a set NUMBA_CACHE_DIR wins in both."""
    import tempfile

    from fmaprep.audio.resample import ensure_numba_cache_dir
    from fmaprep.spark.session import local_numba_cache_conf

    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # recorded, so the test's default is undone
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what $TMPDIR would give
    want = str(tmp_path / f"fmaprep-numba-{os.getuid()}")
    assert local_numba_cache_conf() == {"spark.executorEnv.NUMBA_CACHE_DIR": want}
    assert ensure_numba_cache_dir() == want
    assert stat.S_IMODE(os.stat(want).st_mode) == 0o700
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert local_numba_cache_conf() == {"spark.executorEnv.NUMBA_CACHE_DIR": str(tmp_path / "mine")}


@pytest.mark.parametrize("kind", ["group_writable", "world_writable", "foreign_owner", "symlink"])
def test_an_unsafe_cache_directory_is_refused(tmp_path: Path, kind: str) -> None:
    from fmaprep.audio.resample import UnsafeCacheError, private_dir

    cache = tmp_path / "numba"
    if kind == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        cache.symlink_to(tmp_path / "elsewhere")
        message = "not a directory"
    else:
        cache.mkdir(mode=0o700)
    if kind == "group_writable":
        cache.chmod(0o770)
        message = "writable by others"
    elif kind == "world_writable":
        cache.chmod(0o1777)
        message = "writable by others"
    elif kind == "foreign_owner":
        if os.getuid() != 0:
            pytest.skip("giving a directory to another user needs root")
        os.chown(cache, 54321, -1)
        message = "owned by uid 54321"
    with pytest.raises(UnsafeCacheError, match=message):
        private_dir(str(cache))
