"""Speedup against threads, with the Amdahl's-law fit and the serial fraction it implies."""

from __future__ import annotations

from pathlib import Path

from benchmarks.fit import amdahl, fit_serial_fraction


def plot_speedup(rows: list[dict[str, object]], path: Path) -> dict[str, float]:
    """Write the PNG; return the fitted serial fraction per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    fits: dict[str, float] = {}
    configs = sorted({str(r["config"]) for r in rows})
    max_threads = max(int(str(r["threads"])) for r in rows)
    for config in configs:
        mine = sorted(
            (r for r in rows if r["config"] == config), key=lambda r: int(str(r["threads"]))
        )
        threads = [int(str(r["threads"])) for r in mine]
        speedups = [float(str(r["speedup"])) for r in mine]
        serial = fit_serial_fraction(threads, speedups)
        fits[config] = serial
        (line,) = ax.plot(threads, speedups, "o", label=f"{config} (measured)")
        grid = [1 + i * (max_threads - 1) / 50 for i in range(51)]
        ax.plot(grid, [amdahl(n, serial) for n in grid], "-", color=line.get_color(),
                label=f"{config}: Amdahl fit, serial {serial:.1%}")  # fmt: skip
    ax.plot([1, max_threads], [1, max_threads], ":", color="gray", label="linear")
    ax.set_xlabel("threads (local[N])")
    ax.set_ylabel("speedup over local[1]")
    ax.set_title("fmaprep preprocess: speedup")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return fits
