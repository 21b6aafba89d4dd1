"""Amdahl's law: speedup(n) = 1 / (s + (1 - s) / n); fit the serial fraction s."""

from __future__ import annotations

from collections.abc import Sequence


def amdahl(n: float, serial: float) -> float:
    return 1.0 / (serial + (1.0 - serial) / n)


def fit_serial_fraction(threads: Sequence[int], speedups: Sequence[float]) -> float:
    """Least squares on 1/S = s (1 - 1/n) + 1/n, which is linear in s; clipped to [0, 1]."""
    xs = [1.0 - 1.0 / n for n in threads]
    ys = [1.0 / s - 1.0 / n for n, s in zip(threads, speedups, strict=True)]
    denom = sum(x * x for x in xs)
    if denom == 0:
        return 0.0
    serial = sum(x * y for x, y in zip(xs, ys, strict=True)) / denom
    return min(1.0, max(0.0, serial))
