"""How ``fmaprep report`` scales with track length: two OUTPUTs with the same 1,000 tracks, 2 s
and 60 s long, in the job's layout (pickle parts, manifest shards whose ``_task`` header holds the
part's code histogram, as spark/writers.py writes them, and a fmaprep commit); report's wall time
on each, median of N runs. Prints one JSON line; docs/training.md quotes it.

    .venv/bin/python benchmarks/report_scale.py [--tracks 1000] [--runs 5] [--dir /tmp/rs]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from fmaprep.formats.commit import MANIFEST_DIR, SUCCESS_FILE, Commit, Part
from fmaprep.formats.sequencefile import PickleFileWriter
from fmaprep.report.html import write_report

RATE = 8000
TRACKS_PER_PART = 125


def make_output(root: str, tracks: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, MANIFEST_DIR))
    parts, shards = [], []
    for p in range(0, tracks, TRACKS_PER_PART):
        name = f"part-{p // TRACKS_PER_PART:05d}-bench-a0"
        counts = np.zeros(256, np.int64)
        lines = []
        with open(os.path.join(root, name), "wb") as f:
            writer = PickleFileWriter(f)
            for i in range(p, min(tracks, p + TRACKS_PER_PART)):
                # music-like codes: most near silence (128), Laplacian spread
                codes = np.clip(128 + rng.laplace(0, 12, int(seconds * RATE)), 0, 255)
                codes = codes.astype(np.uint8)
                tid = f"{i:06d}"
                record = {
                    "track_id": tid,
                    "source": f"/m/{tid}.mp3",
                    "sample_rate": RATE,
                    "mu": 255,
                    "genre": ("Rock", "Jazz", "Folk")[i % 3],
                    "codes": codes,
                }
                writer.append(record)
                counts += np.bincount(codes, minlength=256)
                lines.append(
                    {
                        "track_id": tid,
                        "source": record["source"],
                        "status": "ok",
                        "duration_s": seconds,
                        "n_samples": codes.size,
                        "gain": 1.0,
                        "genre": record["genre"],
                        "part": name,
                    }
                )
            writer.close()
        header = {"_task": {"part": name, "records": len(lines), "code_counts": counts.tolist()}}
        shard = f"{MANIFEST_DIR}/{name}.jsonl"
        data = "".join(json.dumps(x) + "\n" for x in [header, *lines])
        with open(os.path.join(root, shard), "w", encoding="utf-8") as f:
            f.write(data)
        parts.append(Part(name, os.path.getsize(os.path.join(root, name)), len(lines)))
        shards.append((shard, len(data)))
    commit = Commit(
        "bench",
        "pickle",
        tuple(parts),
        tuple(shards),
        {"audio_seconds": tracks * seconds, "wall_seconds": 1.0},
    )
    with open(os.path.join(root, SUCCESS_FILE), "wb") as f:
        f.write(commit.to_bytes())


def time_report(root: str, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``write_report`` (CPU time is steadier on a busy machine)."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        write_report(root, os.path.join(root + "-report.html"))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="report-scale-")
    result: dict[str, object] = {"tracks": args.tracks, "runs": args.runs}
    try:
        for seconds in (2.0, 60.0):
            root = os.path.join(base, f"out-{int(seconds)}s")
            make_output(root, args.tracks, seconds)
            size = sum(
                os.path.getsize(os.path.join(root, n))
                for n in os.listdir(root)
                if n.startswith("part-")
            )
            wall, cpu = time_report(root, args.runs)
            result[f"{int(seconds)}s"] = {
                "median_s": round(wall, 3),
                "median_cpu_s": round(cpu, 3),
                "part_bytes": size,
            }
        short, long = result["2s"], result["60s"]
        result["ratio"] = round(long["median_s"] / short["median_s"], 2)  # type: ignore[index]
        result["cpu_ratio"] = round(long["median_cpu_s"] / short["median_cpu_s"], 2)  # type: ignore[index]
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
