"""The report's pictures: matplotlib on an Agg canvas (no display), as base64 PNG."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

BAR_COLOR = "#1f77b4"


def figure_png(draw: Callable[[Any], None], size: tuple[float, float] = (6.0, 3.6)) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _spectrogram(ax: Any, x: npt.NDArray[Any], rate: int, title: str, top: float) -> None:
    nfft = 512 if rate <= 8000 else 1024
    with np.errstate(divide="ignore"):  # digital silence is -inf dB: drawn as the floor
        ax.specgram(x, NFFT=nfft, Fs=rate, noverlap=nfft // 2, cmap="magma", vmin=-120)
    ax.set_ylim(0, top)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("s")


def spectrograms_png(
    output: npt.NDArray[Any], rate: int, source: tuple[npt.NDArray[Any], int] | None
) -> str:
    """Source and output side by side on one frequency axis; the output's band edge marked."""
    top = (source[1] if source is not None else rate) / 2

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, 2, sharey=True)
        if source is not None:
            _spectrogram(axes[0], source[0], source[1], f"source ({source[1]} Hz)", top)
        else:
            axes[0].text(0.5, 0.5, "source not readable here", ha="center",
                         transform=axes[0].transAxes)  # fmt: skip
        _spectrogram(axes[1], output, rate, f"output ({rate} Hz, mu-law)", top)
        for ax in axes:
            ax.axhline(rate / 2, color="#2ca02c", linestyle="--", linewidth=1)
        axes[0].set_ylabel("Hz")

    return figure_png(draw, (7.5, 3.0))


def waveform_png(x: npt.NDArray[Any], rate: int, bins: int = 1000) -> str:
    """The whole track's min/max envelope."""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        n = len(x)
        if n == 0:
            return
        edges = np.linspace(0, n, min(bins, n) + 1).astype(int)
        lo = np.minimum.reduceat(x, edges[:-1])
        hi = np.maximum.reduceat(x, edges[:-1])
        t = edges[:-1] / rate
        ax.fill_between(t, lo, hi, color=BAR_COLOR, linewidth=0)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlim(0, n / rate)
        ax.set_xlabel("s")

    return figure_png(draw, (7.5, 1.6))
