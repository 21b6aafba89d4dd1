"""An OUTPUT's code histogram without reading its codes: the sum of the per-part histograms the
tasks keep in their manifest shard headers (``_task.code_counts``, written by
:func:`fmaprep.spark.writers.write_part`), so ``report`` reads kilobytes per part, not the
samples.

A part kept by ``--mode resume`` keeps its histogram: the resumed run's commit carries its
task's header forward (``_task.carried`` in the run's driver shard). A header counts every
record of its part file; when a resume replaced some of them (the commit's ``exclude`` for the
part), exactly those records are read and subtracted.

Where a committed part has no such header (outputs written before the headers existed, or
before resumes carried them; Spark's own outputs), its tracks are counted from their records
instead: all of them when they
are at most ``SAMPLE_TRACKS``, else a seeded sample of ``SAMPLE_TRACKS`` of them (Python's
``random.Random(SAMPLE_SEED).sample`` of their sorted track ids), scaled by the tracks'
``n_samples`` in the manifest; a Spark output whose manifest lists no track has all its records
counted. ``how`` says which, for the page.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fmaprep.formats.manifest import CARRIED_KEY
from fmaprep.formats.records import OutputInfo, read_commit, read_records, read_superseded

SAMPLE_TRACKS = 64
SAMPLE_SEED = 0


@dataclass(frozen=True)
class CodeHistogram:
    counts: npt.NDArray[np.int64]  # occurrences of each code 0..255 (estimated when sampled)
    how: str  # where the counts come from, in words
    records_read: int


def _task_counts(task: dict[str, Any]) -> npt.NDArray[np.int64] | None:
    counts = task.get("code_counts")
    if not isinstance(counts, list) or len(counts) != 256:
        return None
    return np.asarray(counts, dtype=np.int64)


def _by_part(tasks: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Part name -> its statistics: the tasks' headers and those a resume carried forward."""
    found: dict[Any, dict[str, Any]] = {}
    for task in tasks:
        for entry in [task, *task.get(CARRIED_KEY, ())]:
            if isinstance(entry, dict) and entry.get("part"):
                found[entry["part"]] = entry
    return found


def code_histogram(root: str, info: OutputInfo) -> CodeHistogram:
    """The histogram of every code of the committed records of ``root`` (see the module)."""
    commit = read_commit(root)
    by_part = _by_part(info.tasks)
    total = np.zeros(256, np.int64)
    missing: set[str] = set()
    superseded = 0
    for part in commit.parts if commit is not None else ():
        counts = _task_counts(by_part.get(part.name, {}))
        if counts is None:
            missing.add(part.name)
            continue
        for record in read_superseded(root, part):  # replaced by a resume: not in the output
            counts -= np.bincount(record["codes"], minlength=256)[:256]
            superseded += 1
        total += counts
    ok = [x for x in info.lines if x.get("status") == "ok"]
    if commit is None and not ok:  # a Spark output without manifest lines: count everything
        for record in read_records(root):
            total += np.bincount(record["codes"], minlength=256)[:256]
            missing.add(str(record["track_id"]))
        return CodeHistogram(total, f"{len(missing)} records (exact)", len(missing))
    todo = ok if commit is None else [x for x in ok if x.get("part") in missing]
    if not todo:
        return CodeHistogram(total, "the tasks' statistics (exact)", superseded)
    ids = sorted({str(x["track_id"]) for x in todo})
    sources = {x["source"] for x in todo}
    sample = ids
    if len(ids) > SAMPLE_TRACKS:
        sample = random.Random(SAMPLE_SEED).sample(ids, SAMPLE_TRACKS)
    counts = np.zeros(256, np.int64)
    read = 0
    for record in read_records(root, track_ids=sample, parts=missing if commit else None):
        if record.get("source") in sources:  # not the same id in a part with statistics
            counts += np.bincount(record["codes"], minlength=256)[:256]
            read += 1
    rest = " and the tasks' statistics" if total.any() else ""
    if len(sample) == len(ids):
        return CodeHistogram(total + counts, f"{read} records{rest} (exact)", read + superseded)
    want = sum(int(x.get("n_samples") or 0) for x in todo)
    scale = want / counts.sum() if counts.sum() else 0.0
    how = f"a seeded sample of {len(sample)} of {len(ids)} tracks{rest} (estimated)"
    return CodeHistogram(total + np.rint(counts * scale).astype(np.int64), how, read + superseded)
