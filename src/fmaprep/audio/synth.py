"""Synthetic music-like signals (pure numpy): chords with envelopes, a bass line, noise-burst
drums, silences, and stereo with different left and right. Used by the demo corpus and tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_MAJOR = (0, 4, 7)
_MINOR = (0, 3, 7)
# I - V - vi - IV, as (semitones above the key, chord quality)
_PROGRESSION = ((0, _MAJOR), (7, _MAJOR), (9, _MINOR), (5, _MAJOR))


def _note(freq: float, n: int, sr: int, harmonics: int = 4) -> npt.NDArray[np.float64]:
    t = np.arange(n) / sr
    tone = sum(np.sin(2 * np.pi * freq * k * t) / k**1.5 for k in range(1, harmonics + 1))
    attack = min(n, int(0.02 * sr))
    env = np.exp(-3.0 * t / max(t[-1], 1e-9)) if n else t
    env[:attack] *= np.linspace(0.0, 1.0, attack)
    return np.asarray(tone * env, dtype=np.float64)


def _burst(n: int, sr: int, decay_s: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0)  # tilt towards high frequencies, like a hi-hat/snare
    return np.asarray(noise * np.exp(-t / decay_s), dtype=np.float64)


def music(seconds: float, sr: int, seed: int, stereo: bool = True) -> npt.NDArray[np.float32]:
    """A short piece: frames of shape (n, 2) when ``stereo`` else (n, 1), peak about 0.9."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    left = np.zeros(n)
    right = np.zeros(n)
    key_hz = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    beat = int(sr * 60.0 / rng.uniform(90, 140))
    bar = 4 * beat
    for start in range(0, n, bar):
        shift, quality = _PROGRESSION[(start // bar) % len(_PROGRESSION)]
        length = min(bar, n - start)
        for i, interval in enumerate(quality):
            f = key_hz * 2 ** ((shift + interval + 12) / 12)
            note = _note(f, length, sr)
            left[start : start + length] += 0.25 * note * (1.0 if i != 2 else 0.4)
            right[start : start + length] += 0.25 * note * (0.4 if i != 2 else 1.0)
        bass = _note(key_hz * 2 ** (shift / 12) / 2, length, sr, harmonics=2)
        left[start : start + length] += 0.35 * bass
        right[start : start + length] += 0.15 * bass
    for start in range(0, n, beat):
        length = min(beat // 2, n - start)
        hat = _burst(length, sr, 0.03, rng)
        right[start : start + length] += 0.2 * hat
        left[start : start + length] += 0.05 * hat
    # a silent break and silent head/tail, as real tracks have
    gap = slice(int(0.55 * n), int(0.6 * n))
    for ch in (left, right):
        ch[gap] = 0.0
        ch[: int(0.2 * sr)] = 0.0
        ch[n - int(0.2 * sr) :] = 0.0
    frames = np.stack([left, right], axis=1)
    frames *= 0.9 / max(float(np.max(np.abs(frames))), 1e-9)
    if not stereo:
        frames = frames[:, :1]
    return frames.astype(np.float32)


def tone(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> npt.NDArray[np.float64]:
    t = np.arange(round(seconds * sr)) / sr
    return np.asarray(amplitude * np.sin(2 * np.pi * freq * t), dtype=np.float64)
