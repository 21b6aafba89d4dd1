"""The whole benchmark: the job matrix, the baselines, the table, the plot, the ratios."""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.baselines import decode_only, librosa_script
from benchmarks.plot import plot_speedup
from benchmarks.runner import run_matrix, table_rows, threads_of, write_table
from fmaprep.config import PipelineConfig
from fmaprep.model import InputFile
from fmaprep.pipeline import process_file

log = logging.getLogger(__name__)


def pipeline_per_core(paths: list[str]) -> tuple[float, float]:
    """The default pipeline in this process, one core, no Spark: (audio s, wall s)."""
    import time

    cfg = PipelineConfig()
    started = time.perf_counter()
    audio = 0.0
    for path in paths:
        _, line = process_file(InputFile(path, os.path.getsize(path)), cfg)
        audio += float(line.get("duration_s", 0.0))
    return audio, time.perf_counter() - started


def _librosa_wall(paths: list[str], processes: int) -> float:
    return librosa_script(paths, processes)[1]


def run_benchmark(  # noqa: PLR0917 (one call site, the CLI)
    input_dir: str,
    paths: list[str],
    masters: list[str],
    configs: list[str],
    repeat: int,
    out_dir: Path,
    baselines: bool,
) -> dict[str, Any]:
    # the librosa script runs with as many processes as each default setting has threads
    librosa_threads = sorted({threads_of(m) for m in masters}) if baselines else []
    extras: dict[str, Callable[[], float]] = {
        f"librosa x{n}": partial(_librosa_wall, paths, n) for n in librosa_threads
    }
    runs, extra_seconds = run_matrix(input_dir, masters, configs, repeat, extras)
    rows = table_rows(runs)
    csv_path, md_path = write_table(rows, out_dir)
    fits = plot_speedup(rows, out_dir / "speedup.png")
    summary: dict[str, Any] = {
        "table": str(md_path),
        "csv": str(csv_path),
        "plot": str(out_dir / "speedup.png"),
        "serial_fraction": {k: round(v, 4) for k, v in fits.items()},
        "rows": rows,
    }
    by_key = {(r.config, r.master): r for r in runs}
    if "original" in configs and "default" in configs:
        summary["default_over_original"] = {
            m: round(by_key["default", m].audio_per_wall / by_key["original", m].audio_per_wall, 2)
            for m in masters
        }
    if baselines:
        audio_d, wall_d = decode_only(paths)
        audio_p, wall_p = pipeline_per_core(paths)
        summary["per_core"] = {
            "decode_only_audio_s_per_s": round(audio_d / wall_d, 1),
            "pipeline_audio_s_per_s": round(audio_p / wall_p, 1),
            "pipeline_over_decode": round((audio_p / wall_p) / (audio_d / wall_d), 3),
        }
        librosa: dict[str, Any] = {}
        for run in (r for r in runs if r.config == "default"):
            wall_l = statistics.median(extra_seconds[f"librosa x{run.threads}"])
            librosa[run.master] = {
                "librosa_s": round(wall_l, 2),
                "fmaprep_s": round(run.median, 2),
                "fmaprep_speed_ratio": round(wall_l / run.median, 2),
            }
        summary["librosa"] = librosa
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
