"""``read_records`` with the pickle allowlist against plain ``pickle.loads`` (``trusted=True``,
what every reader did before), on one OUTPUT, round-robin: the README's reading-speed figure.

``python -m benchmarks.readspeed OUTPUT [--repeat 7]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from fmaprep.formats.records import read_records


def read_seconds(output: str, trusted: bool) -> tuple[float, int]:
    started = time.perf_counter()
    samples = sum(int(r["codes"].size) for r in read_records(output, trusted=trusted))
    return time.perf_counter() - started, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readspeed", description=__doc__)
    parser.add_argument("output")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    read_seconds(args.output, trusted=True)  # warm-up: page cache
    times: dict[str, list[float]] = {"allowlist": [], "trusted": []}
    for _ in range(args.repeat):
        for name, runs in times.items():
            seconds, samples = read_seconds(args.output, trusted=name == "trusted")
            runs.append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"samples": samples, "median_s": medians,
                      "allowlist_over_trusted": round(medians["allowlist"] / medians["trusted"], 3),
                      "runs": times}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
