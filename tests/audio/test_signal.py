"""Mu-law, channel pick and normalization against golden vectors and independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fmaprep.audio.signal import (
    apply_gain,
    mu_law_decode,
    mu_law_encode,
    mu_law_encode_f32,
    peak_gain,
    pick_channel,
)

# Hand-computed with mu = 255 (ln 256 = 5.545177444):
#   x = 0.5:  c = ln(128.5)/ln(256) = 0.875703;  (1.875703/2)*255 + 0.5 = 239.65 -> 239
#   x = -0.5: c = -0.875703;                      (0.124297/2)*255 + 0.5 = 16.35  -> 16
#   x = 1e-4: c = ln(1.0255)/ln(256) = 0.004541;  (1.004541/2)*255 + 0.5 = 128.58 -> 128
#   x = 0.01: c = ln(3.55)/ln(256) = 0.228463;    (1.228463/2)*255 + 0.5 = 157.13 -> 157
#   x = 0 -> 127.5 + 0.5 = 128;  x = 1 -> 255.5 -> 255;  x = -1 -> 0.5 -> 0
#   out of range: clipped first, so 2.0 -> 255, -3.0 -> 0, 1.5 -> 255
GOLDEN = [
    (-1.0, 0),
    (-0.5, 16),
    (0.0, 128),
    (1e-4, 128),
    (0.01, 157),
    (0.5, 239),
    (1.0, 255),
    (2.0, 255),
    (1.5, 255),
    (-3.0, 0),
]


@pytest.mark.parametrize(("x", "code"), GOLDEN)
def test_mu_law_golden_vectors(x: float, code: int) -> None:
    out = mu_law_encode(np.array([x]), 255)
    assert out.dtype == np.uint8
    assert int(out[0]) == code


def _torchaudio_mu_law_encoding(x: np.ndarray, mu: int) -> np.ndarray:
    """torchaudio.functional.mu_law_encoding, transcribed: sign(x)*log1p(mu|x|)/log1p(mu), then
    ((x_mu + 1) / 2 * mu + 0.5).to(int64) (truncation; non-negative here, so floor)."""
    mu_f = float(mu)
    x_mu = np.sign(x) * np.log1p(mu_f * np.abs(x)) / np.log1p(mu_f)
    return ((x_mu + 1) / 2 * mu_f + 0.5).astype(np.int64)


def _tf_wavenet_mu_law_encode(x: np.ndarray, mu: int) -> np.ndarray:
    """tensorflow-wavenet's mu_law_encode: min(|x|, 1), then cast((s + 1) / 2 * mu + 0.5)."""
    safe = np.minimum(np.abs(x), 1.0)
    magnitude = np.log1p(mu * safe) / np.log1p(mu)
    signal = np.sign(x) * magnitude
    return ((signal + 1) / 2 * mu + 0.5).astype(np.int32)


@pytest.mark.parametrize("mu", [255, 127, 15])
def test_mu_law_equals_torchaudio_and_tf_wavenet_formulas(mu: int) -> None:
    rng = np.random.default_rng(mu)
    x = np.concatenate([rng.uniform(-1, 1, 100_000), rng.normal(0, 0.01, 100_000).clip(-1, 1)])
    ours = mu_law_encode(x, mu).astype(np.int64)
    np.testing.assert_array_equal(ours, _torchaudio_mu_law_encoding(x, mu))
    np.testing.assert_array_equal(ours, _tf_wavenet_mu_law_encode(x, mu))
    assert ours.min() >= 0 and ours.max() <= mu


def test_silence_is_128_and_codes_are_monotonic() -> None:
    assert mu_law_encode(np.zeros(10)).tolist() == [128] * 10
    # a grid fine near zero too, where one code spans only |x| < 1.7e-5
    x = np.sort(np.concatenate([np.linspace(-1, 1, 10_001), np.linspace(-1e-4, 1e-4, 10_001)]))
    assert np.all(np.diff(mu_law_encode(x).astype(int)) >= 0)
    assert set(mu_law_encode(x).tolist()) == set(range(256))


def test_mu_law_decode_is_exact_inverse_of_companding() -> None:
    codes = np.arange(256)
    y = 2 * codes / 255 - 1
    expected = np.sign(y) * ((1 + 255) ** np.abs(y) - 1) / 255
    np.testing.assert_allclose(mu_law_decode(codes), expected, rtol=0, atol=1e-12)
    assert mu_law_decode(np.array([0]))[0] == pytest.approx(-1.0)
    assert mu_law_decode(np.array([255]))[0] == pytest.approx(1.0)
    # every code decodes to a value that encodes back to the same code
    np.testing.assert_array_equal(mu_law_encode(mu_law_decode(codes)), codes)


@given(arrays(np.float64, st.integers(1, 500), elements=st.floats(-1, 1, allow_nan=False)))
def test_mu_law_round_trip_error_bound(x: np.ndarray) -> None:
    """Codes are 2/mu apart in the companded domain c, so decoding is off by at most 1/mu in c;
    mapped back through x = ((1+mu)^|c| - 1)/mu that bounds the error in x."""
    mu = 255
    back = mu_law_decode(mu_law_encode(x, mu), mu)
    c_step = 1.0 / mu
    bound = (
        np.expm1((np.abs(mu_law_c(x)) + c_step) * math.log1p(mu))
        - np.expm1(np.abs(mu_law_c(x)) * math.log1p(mu))
    ) / mu
    assert np.all(np.abs(back - x) <= bound + 1e-12)


def mu_law_c(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(255 * np.abs(x)) / np.log1p(255)


def test_pick_channel() -> None:
    left = np.array([0.1, 0.2, 0.3])
    right = np.array([-0.5, 0.5, 0.0])
    frames = np.stack([left, right], axis=1)
    np.testing.assert_allclose(pick_channel(frames, "left"), left, rtol=1e-6)
    np.testing.assert_allclose(pick_channel(frames, "right"), right, rtol=1e-6)
    np.testing.assert_allclose(pick_channel(frames, "mix"), (left + right) / 2, rtol=1e-6)
    mono = left[:, None]
    for channel in ("left", "right", "mix"):
        np.testing.assert_allclose(pick_channel(mono, channel), left, rtol=1e-6)  # type: ignore[arg-type]
    assert pick_channel(frames).dtype == np.float32


def peak_normalize(x: np.ndarray) -> tuple[np.ndarray, float]:
    """What the pipeline does with the peak of the whole resampled signal."""
    gain = peak_gain(float(np.max(np.abs(x))) if x.size else 0.0)
    return apply_gain(x, gain), gain


def test_peak_normalize() -> None:
    x = np.array([0.1, -0.25, 0.2], dtype=np.float32)
    y, gain = peak_normalize(x)
    assert gain == pytest.approx(4.0)
    np.testing.assert_allclose(y, [0.4, -1.0, 0.8], rtol=1e-6)
    silent, g = peak_normalize(np.zeros(5, dtype=np.float32))
    assert g == 1.0 and not silent.any()
    denormal, g = peak_normalize(np.array([1e-45, -1e-45], dtype=np.float32))
    assert g == 1.0 and np.all(np.isfinite(denormal))  # found by hypothesis: gain was inf


@given(arrays(np.float32, st.integers(1, 300), elements=st.floats(-4, 4, width=32)))
def test_peak_normalize_property(x: np.ndarray) -> None:
    y, gain = peak_normalize(x)
    peak = float(np.max(np.abs(x)))
    if peak < np.finfo(np.float32).tiny:  # silence, or denormal: 1/peak would overflow float32
        assert gain == 1.0 and np.array_equal(y, x)
    else:
        assert float(np.max(np.abs(y))) == pytest.approx(1.0, rel=1e-6)
        np.testing.assert_allclose(y, x * gain, rtol=1e-6, atol=1e-30)


def _f32_from_bits(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


@pytest.mark.parametrize("mu", [255, 127, 15, 1])
def test_mu_law_table_equals_the_formula_at_every_bucket_edge(mu: int) -> None:
    """The table path splits float32 patterns into 2**16 buckets; every bucket's first and last
    three patterns and 1M random patterns give the formula's code (NaN excluded)."""
    starts = np.arange(1 << 16, dtype=np.uint64) << np.uint64(16)
    offsets = np.array([0, 1, 2, 0xFFFD, 0xFFFE, 0xFFFF], dtype=np.uint64)
    edges = (starts[:, None] + offsets[None, :]).ravel()
    random = np.random.default_rng(mu).integers(0, 1 << 32, 1_000_000, dtype=np.uint64)
    x = _f32_from_bits(np.concatenate([edges, random]))
    x = x[~np.isnan(x)]
    np.testing.assert_array_equal(mu_law_encode_f32(x, mu), mu_law_encode(x, mu))


def test_mu_law_table_equals_the_formula_densely_where_codes_change_fastest() -> None:
    """Float32s all over [-0.01, 0.01] (the steep part near 0) and every one around +-1."""
    lo, hi = np.array([0.0, 0.01], dtype=np.float32).view(np.uint32)
    pos = np.arange(lo, hi, 101, dtype=np.uint64)  # every 101st of ~1e9 patterns
    one = np.float32(1.0).view(np.uint32)
    around_one = np.arange(one - 200_000, one + 200_000, dtype=np.uint64)
    bits = np.concatenate([pos, around_one])
    x = _f32_from_bits(bits)
    for signed in (x, -x):
        np.testing.assert_array_equal(mu_law_encode_f32(signed), mu_law_encode(signed))
    special = np.array([np.inf, -np.inf, 0.0, -0.0, 2.0, -2.0, 1e-45, -1e-45], dtype=np.float32)
    np.testing.assert_array_equal(mu_law_encode_f32(special), mu_law_encode(special))
