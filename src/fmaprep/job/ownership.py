"""What under OUTPUT is fmaprep's, and whose: the names a run writes, and the refusals that keep
fmaprep from ever deleting anything else (docs/commit.md, "What fmaprep deletes").

A name is fmaprep's when it has one of the shapes a run writes (below); it belongs to a run when
the run id is in the name. The clean-up deletes only such names, of runs this output's records
know (``_fmaprep/run-<run>.json``, written when a run takes the lease, and the runs a commit
names), never a name of another shape, whatever it is called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fmaprep.formats.commit import MANIFEST_DIR, SUCCESS_FILE
from fmaprep.formats.manifest import MANIFEST_FILE, STATS_FILE
from fmaprep.storage.stores import TMP_SUFFIX

CONTROL_DIR = "_fmaprep"  # the lease and the run records
CONVENIENCE_FILES = (MANIFEST_FILE, STATS_FILE)
RUN = r"\d{8}T\d{6}Z[0-9a-f]{6}"  # job.run.new_generation: UTC time, then a random tag
_PART = rf"part-\d{{5,}}-(?P<run>{RUN})-a\d+[0-9a-f]*(?:\.parquet)?"
_SHAPES = {
    "part": re.compile(_PART),
    "shard": re.compile(rf"{MANIFEST_DIR}/{_PART}\.jsonl"),
    "driver": re.compile(rf"{MANIFEST_DIR}/(?P<run>{RUN})-driver\.jsonl"),
    "lease": re.compile(rf"{CONTROL_DIR}/lease-(?P<epoch>\d{{6,}})\.json"),
    "record": re.compile(rf"{CONTROL_DIR}/run-(?P<run>{RUN})\.json"),
}
# Store writers stage at ``.<name[:40]>.<uuid hex>.fmaprep-tmp`` in the target's directory
_TEMP = re.compile(
    rf"(?:(?P<dir>{MANIFEST_DIR}|{CONTROL_DIR})/)?\.(?P<stem>[^/]+)\.[0-9a-f]{{32}}"
    + re.escape(TMP_SUFFIX)
)
_STEM_RUN = re.compile(rf"(?:part-\d{{5,}}-|run-)?(?P<run>{RUN})")


@dataclass(frozen=True)
class Owned:
    """A name fmaprep writes: its kind and, when the name carries one, its run id."""

    kind: str  # commit | convenience | part | shard | driver | lease | record | temp
    run: str | None = None
    epoch: int | None = None  # lease files


def owned(name: str) -> Owned | None:
    """What ``name`` (relative to OUTPUT) is when fmaprep could have written it, else None."""
    if name == SUCCESS_FILE:
        return Owned("commit")
    if name in CONVENIENCE_FILES:
        return Owned("convenience")
    for kind, shape in _SHAPES.items():
        match = shape.fullmatch(name)
        if match:
            groups = match.groupdict()
            run = groups.get("run")
            epoch = int(groups["epoch"]) if groups.get("epoch") else None
            return Owned(kind, run, epoch)
    match = _TEMP.fullmatch(name)
    if match:
        stem = _STEM_RUN.match(match.group("stem"))
        return Owned("temp", stem.group("run") if stem else None)
    return None


def foreign_names(names: list[str]) -> list[str]:
    """The names fmaprep did not write (in the order given)."""
    return [n for n in names if owned(n) is None]


def describe_names(names: list[str], limit: int = 3) -> str:
    """``a.txt, photos/b.jpg and 4 more``: what a refusal line shows."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
