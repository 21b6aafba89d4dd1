"""What the decode process costs per file (issue 14), without Spark's noise: every file of a
corpus through :func:`process_file` in this process and through a warm :class:`DecodeProcess`,
one core, round-robin; the README's isolation figure next to the job-level one.

``python -m benchmarks.isolation CORPUS [--repeat 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from fmaprep.config import PipelineConfig
from fmaprep.isolation import DecodeProcess
from fmaprep.model import InputFile
from fmaprep.pipeline import process_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.isolation", description=__doc__)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    files = [InputFile(str(p), p.stat().st_size) for p in sorted(args.corpus.rglob("*.mp3"))]
    cfg = PipelineConfig()
    times: dict[str, list[float]] = {"in_process": [], "decode_process": []}
    with DecodeProcess(cfg) as isolated:
        for item in files[:2]:  # warm-up: imports, filter caches, page cache, in both
            process_file(item, cfg)
            isolated.process(item)
        for _ in range(args.repeat):
            for name, runs in times.items():
                run = isolated.process if name == "decode_process" else (
                    lambda item: process_file(item, cfg))  # fmt: skip
                started = time.perf_counter()
                for item in files:
                    run(item)
                runs.append(time.perf_counter() - started)
    medians = {k: statistics.median(v) for k, v in times.items()}
    overhead = medians["decode_process"] / medians["in_process"] - 1
    print(json.dumps({"files": len(files), "median_s": medians,
                      "overhead_pct": round(100 * overhead, 2),
                      "overhead_ms_per_file": round(1000 * (medians["decode_process"] -
                                                            medians["in_process"]) / len(files), 2),
                      "runs": times}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
