"""Run the job for each (config, master) a few times, in fresh processes (JVM start included),
and summarize: median/min/max seconds, audio hours per hour, speedup, efficiency."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CONFIGS: dict[str, list[str]] = {
    "default": [],
    # the original design: pydub via a wav tempfile and resampy kaiser_best
    "original": ["--decoder", "pydub", "--resampler", "resampy"],
    # files decoded in the Python worker itself: what the decode process costs (issue 14)
    "in-worker": ["--isolation", "none"],
}


@dataclass(frozen=True)
class Run:
    config: str
    master: str
    threads: int
    seconds: list[float]
    audio_seconds: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def audio_per_wall(self) -> float:
        return self.audio_seconds / self.median if self.median else 0.0


def threads_of(master: str) -> int:
    match = re.fullmatch(r"local\[(\d+)(?:,\d+)?\]", master)
    if not match:
        raise ValueError(f"bench takes local[N] masters, got {master!r}")
    return int(match.group(1))


def run_job(input_dir: str, master: str, extra: list[str], workdir: Path) -> tuple[float, float]:
    """One job in a fresh Python + JVM; returns (wall seconds, audio seconds)."""
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "fmaprep", "-q", "preprocess", input_dir, str(out),
           "--master", master, "--max-error-rate", "1", *extra]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"job failed ({master} {' '.join(extra)}): {proc.stderr.strip()[-500:]}")
    stats = json.loads((out / "_stats.json").read_text())
    return wall, float(stats["audio_seconds"])


def run_matrix(
    input_dir: str,
    masters: list[str],
    configs: list[str],
    repeat: int,
    extras: dict[str, Callable[[], float]] | None = None,
) -> tuple[list[Run], dict[str, list[float]]]:
    """Every setting ``repeat`` times, round-robin (repeat 1 of all settings, then repeat 2...),
    so a machine that slows down or speeds up mid-benchmark moves every setting alike instead of
    skewing the ratios between them. ``extras`` (name -> a timed run returning wall seconds,
    e.g. a baseline script) join each round. Returns the runs and the extras' seconds."""
    extra_seconds: dict[str, list[float]] = {name: [] for name in extras or {}}
    settings = [(config, master) for config in configs for master in masters]
    seconds: dict[tuple[str, str], list[float]] = {s: [] for s in settings}
    audio: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="fmaprep-bench-") as tmp:
        for i in range(repeat):
            for config, master in settings:
                wall, audio[config, master] = run_job(input_dir, master, CONFIGS[config], Path(tmp))
                seconds[config, master].append(wall)
                log.info("%s %s run %d/%d: %.1f s", config, master, i + 1, repeat, wall)
            for name, timed in (extras or {}).items():
                extra_seconds[name].append(timed())
                log.info("%s run %d/%d: %.1f s", name, i + 1, repeat, extra_seconds[name][-1])
    runs = [
        Run(config, master, threads_of(master), seconds[config, master], audio[config, master])
        for config, master in settings
    ]
    return runs, extra_seconds


def table_rows(runs: list[Run]) -> list[dict[str, object]]:
    rows = []
    for run in runs:
        base = next((r for r in runs if r.config == run.config and r.threads == 1), None)
        speedup = base.median / run.median if base else float("nan")
        rows.append(
            {
                "config": run.config,
                "master": run.master,
                "threads": run.threads,
                "median_s": round(run.median, 2),
                "min_s": round(min(run.seconds), 2),
                "max_s": round(max(run.seconds), 2),
                "audio_h_per_h": round(run.audio_per_wall, 1),
                "speedup": round(speedup, 3),
                "efficiency": round(speedup / run.threads, 3),
            }
        )
    return rows


def write_table(rows: list[dict[str, object]], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "bench.csv", out_dir / "bench.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path
