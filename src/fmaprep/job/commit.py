"""Committing OUTPUT without copies (docs/commit.md).

1. Tasks write their part at a name of their own, then their manifest shard (the task commit).
2. The driver publishes ``_SUCCESS``, a small JSON naming every part and shard of the new
   generation (the job commit): one PUT on S3, a rename over the old one on HDFS and local disk.
3. Then, and only then, it refreshes ``_manifest.jsonl``/``_stats.json`` (conveniences) and
   deletes what the commit does not name: old generations, orphaned attempts, killed runs' work.

A killed run leaves its finished tasks' parts and shards; ``--mode resume`` takes them back.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fmaprep.config import Config
from fmaprep.formats.commit import MANIFEST_DIR, SUCCESS_FILE, Commit, Part, parse_commit
from fmaprep.formats.manifest import (
    CARRIED_KEY,
    MANIFEST_FILE,
    STATS_FILE,
    library_versions,
    manifest_bytes,
    parse_shard,
    shard_bytes,
)
from fmaprep.job.lease import Lease
from fmaprep.job.ownership import (
    CONTROL_DIR,
    CONVENIENCE_FILES,
    describe_names,
    foreign_names,
    owned,
)
from fmaprep.model import InputFile
from fmaprep.spark.writers import TaskResult
from fmaprep.storage.stores import Store
from fmaprep.storage.uris import StorageError, is_local

log = logging.getLogger(__name__)

TEMP_GRACE_S = 5.0  # a temporary name without a run id older than this is a dead run's (doomed())


def config_key(config: Config) -> str:
    """What must match for --mode resume: the pipeline settings and the versions of every
    library that touches the samples (Spark and Python do not)."""
    versions = {k: v for k, v in library_versions().items() if k not in ("pyspark", "python")}
    return config.pipeline.fingerprint(versions)


@dataclass
class OutputState:
    """What OUTPUT holds now: the committed generation (if any), every file's size, and the runs
    its records know (run id -> lease epoch; 0 for the runs a commit names without a record)."""

    output: str
    commit: Commit | None
    legacy: bool  # a _SUCCESS that is not a fmaprep commit (Spark's, or an older fmaprep's)
    sizes: dict[str, int] = field(default_factory=dict)  # name relative to OUTPUT -> bytes
    runs: dict[str, int] = field(default_factory=dict)
    mtimes: dict[str, float | None] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        """OUTPUT holds work: anything but fmaprep's control files (the lease, run records)."""
        return any(not name.startswith(f"{CONTROL_DIR}/") for name in self.sizes)

    @property
    def foreign(self) -> list[str]:
        return foreign_names(sorted(self.sizes))

    @property
    def has_work(self) -> bool:
        """A commit, or parts or shards of fmaprep's shape (a killed run's finished tasks)."""
        kinds = {w.kind for w in map(owned, self.sizes) if w is not None}
        return self.commit is not None or bool(kinds & {"part", "shard", "driver"})


def load_state(store: Store, output: str) -> OutputState:
    """One listing of OUTPUT, its ``_SUCCESS`` and its run records."""
    prefix = output.rstrip("/") + "/"
    entries = []
    for entry in store.list_files(output):
        if entry.uri.rstrip("/") == output.rstrip("/"):
            raise StorageError(f"output {output} is a file, not a directory; nothing was done. "
                               "Choose another OUTPUT")  # fmt: skip
        if entry.uri.startswith(prefix):
            entries.append(entry)
    sizes = {e.uri[len(prefix) :]: e.size for e in entries}
    mtimes = {e.uri[len(prefix) :]: e.mtime for e in entries}
    commit, legacy = None, False
    if SUCCESS_FILE in sizes:
        data = store.read_bytes(prefix + SUCCESS_FILE)
        try:
            commit = parse_commit(data, f"{output}/{SUCCESS_FILE}")
        except ValueError:
            commit = None  # a file of that name that is not ours: foreign, never replaced
        legacy = commit is None
    runs: dict[str, int] = {}
    if commit is not None:
        runs.update((what.run, 0) for what in map(owned, commit.names()) if what and what.run)
    for name in sizes:
        what = owned(name)
        if what is not None and what.kind == "record" and what.run:
            try:
                record = json.loads(store.read_bytes(prefix + name))
                runs[what.run] = int(record["epoch"])
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                continue  # torn or gone: that run's files stay
    return OutputState(output, commit, legacy, sizes, runs, mtimes)


def check_owned(state: OutputState) -> None:
    """Refuse, in every mode, an OUTPUT that holds files but nothing fmaprep wrote: nothing of
    it is ever replaced or deleted, and it is never called an interrupted run."""
    foreign = state.foreign
    if state.legacy or (foreign and not state.has_work):
        what = describe_names(foreign or [SUCCESS_FILE])
        raise StorageError(
            f"output {state.output} holds files fmaprep did not write ({what}); nothing was "
            "done. fmaprep never replaces or deletes them: choose an empty or new OUTPUT"
        )
    if foreign:
        log.warning("%s: %d files fmaprep did not write stay untouched (%s)", state.output,
                    len(foreign), describe_names(foreign))  # fmt: skip


def check_mode(state: OutputState, mode: str) -> None:
    """Refuse an existing OUTPUT unless the mode says what to do with it (after
    :func:`check_owned`)."""
    if not state.exists or mode == "overwrite":
        return
    if mode == "error":
        if state.commit is not None:
            raise StorageError(
                f"output {state.output} exists (use --mode overwrite to replace it, "
                "or --mode resume to add only what is missing)"
            )
        if state.has_work:
            raise StorageError(
                f"output {state.output} holds an interrupted fmaprep run's work but no commit "
                "(--mode resume keeps its finished tasks, --mode overwrite starts again)"
            )


@dataclass
class Kept:
    """What --mode resume keeps: one ok line per input, the parts that hold their records, and
    the statistics the tasks that wrote those parts kept (``carried``: their ``_task`` headers
    with ``code_counts``, the histogram of every record in the part file, the excluded ones
    too), so the new commit still has them after the old shards are gone."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    carried: dict[str, dict[str, Any]] = field(default_factory=dict)  # part name -> header

    def without(self, sources: set[str]) -> Kept:
        """These sources' records no longer kept (--dedupe found them to be duplicates): their
        lines go, their parts list them in ``exclude``, and a part left with no record is not
        kept at all (the clean-up after the commit deletes it)."""
        if not sources:
            return self
        parts = []
        for part in self.parts:
            gone = sources & {ln["source"] for ln in self.lines if ln.get("part") == part.name}
            if len(gone) < part.records:
                exclude = tuple(sorted({*part.exclude, *gone}))
                parts.append(Part(part.name, part.bytes, part.records - len(gone), exclude))
        carried = {p.name: self.carried[p.name] for p in parts if p.name in self.carried}
        return Kept([ln for ln in self.lines if ln["source"] not in sources], parts, carried)


def resumable(store: Store, state: OutputState, files: list[InputFile], config: Config) -> Kept:
    """The committed and the recovered (finished by a killed run) ok lines whose input is still
    the same (``InputFile.identity``), one per input, newest run first; and their parts, each with
    the sources it holds that are not kept (replaced inputs) as ``exclude``."""
    key = config_key(config)
    if state.commit is not None and state.commit.stats.get("config_key") != key:
        raise StorageError(
            f"{state.output} was made with another pipeline config or library versions "
            f"(key {state.commit.stats.get('config_key')}, now {key}); use --mode overwrite"
        )
    committed = {p.name: p for p in state.commit.parts} if state.commit else {}
    named = {n for n, _ in state.commit.manifest} if state.commit else set()
    current = {f.source: f.identity() for f in files}
    by_part: dict[str, list[dict[str, Any]]] = {}
    stats: dict[str, dict[str, Any]] = {}  # part -> the statistics its task kept
    shards = [n for n in state.sizes if n.startswith(f"{MANIFEST_DIR}/") and n.endswith(".jsonl")]
    for shard in sorted(shards):
        header, lines = parse_shard(store.read_bytes(f"{state.output}/{shard}"))
        if shard in named or header.get("part"):
            stats.update(_statistics(header))
        if shard not in named:  # a killed run's finished task: its part must be there, whole
            part = header.get("part")
            if not part or header.get("config_key") != key:
                continue
            if state.sizes.get(part) != header.get("bytes"):
                continue
        for line in lines:
            part = line.get("part")
            if line.get("status") != "ok" or not part:
                continue
            if part in committed and line["source"] in committed[part].exclude:
                continue
            if part in committed or part in state.sizes:
                by_part.setdefault(part, []).append(line)
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    for part in sorted(by_part, key=_run_of, reverse=True):  # newest run first
        for line in by_part[part]:
            source = line["source"]
            if source in chosen or source not in current:
                continue
            if _identity(line) == current[source]:
                chosen[source] = (part, line)
    kept = Kept(lines=[line for _, line in chosen.values()])
    for part, lines in sorted(by_part.items()):
        mine = {s for s, (p, _) in chosen.items() if p == part}
        if not mine:
            continue
        others = {ln["source"] for ln in lines} - mine
        if part in committed:
            others |= set(committed[part].exclude)
        size = committed[part].bytes if part in committed else state.sizes[part]
        kept.parts.append(Part(part, size, len(mine), tuple(sorted(others))))
        if part in stats and stats[part].get("bytes") in (None, size):
            kept.carried[part] = stats[part]
    return kept


def _statistics(header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Part name -> the statistics a shard header holds: a task's own (its part's
    ``code_counts``), or those a resume's driver shard carried for the parts it kept."""
    found = {}
    for task in [header, *header.get(CARRIED_KEY, ())]:
        if isinstance(task, dict) and task.get("part") and "code_counts" in task:
            found[str(task["part"])] = {
                k: task[k] for k in ("part", "bytes", "records", "code_counts") if k in task
            }
    return found


def _identity(line: dict[str, Any]) -> list[object]:
    if "identity" in line:
        return list(line["identity"])
    return ["mtime", line.get("bytes"), line.get("mtime")]


def _run_of(part: str) -> str:
    """``part-00003-<run>-<attempt>``: the run id sorts by time."""
    pieces = part.split("-")
    return pieces[2] if len(pieces) >= 4 else ""  # generation ids hold no "-"


def publish(  # noqa: PLR0917 (the commit's ingredients, each named at the one call)
    store: Store,
    output: str,
    generation: str,
    fmt: str,
    kept: Kept,
    results: list[TaskResult],
    driver_lines: list[dict[str, Any]],
    stats: dict[str, Any],
    lease: Lease,
) -> Commit:
    """Write the generation's own small shard (kept and driver lines), check that every file the
    commit will name is there whole and that this run still holds the lease, then ``_SUCCESS``."""
    shard = f"{MANIFEST_DIR}/{generation}-driver.jsonl"
    header: dict[str, Any] = {"part": None}
    if kept.carried:
        header[CARRIED_KEY] = [kept.carried[p.name] for p in kept.parts if p.name in kept.carried]
    data = shard_bytes(header, [*kept.lines, *driver_lines])
    store.write_bytes(f"{output}/{shard}", data)
    parts = [*kept.parts, *(Part(r.part, r.part_bytes, r.records) for r in results)]
    manifest = [(shard, len(data)), *((r.shard, r.shard_bytes) for r in results)]
    commit = Commit(generation, fmt, tuple(parts), tuple(manifest), stats)
    _check_named(store, output, commit)
    lease.check()  # fencing: a run that lost OUTPUT never commits
    store.open_write(f"{output}/{SUCCESS_FILE}").publish(commit.to_bytes())  # the commit
    return commit


def _check_named(store: Store, output: str, commit: Commit) -> None:
    """Every part and shard the commit names is under OUTPUT with the size it names."""
    prefix = output.rstrip("/") + "/"
    sizes = {e.uri[len(prefix) :]: e.size for e in store.list_files(output)}
    wrong = [
        name for name, size in [*((p.name, p.bytes) for p in commit.parts), *commit.manifest]
        if sizes.get(name) != size
    ]  # fmt: skip
    if wrong:
        raise StorageError(
            f"output {output}: {describe_names(wrong)} missing or changed before the commit "
            "(another writer?); nothing was committed. Rerun with --mode resume"
        )


def finish(  # noqa: PLR0917
    store: Store,
    output: str,
    commit: Commit,
    lines: list[dict[str, Any]],
    commit_seconds: float,
    lease: Lease,
    state: OutputState,
) -> int:
    """After the commit: the convenience files, then delete what the commit does not name of the
    runs this output's records know (``state``, as listed when the run started)."""
    started = time.monotonic()
    stats = json.dumps({**commit.stats, "commit_s": round(commit_seconds, 3)}, indent=2,
                       sort_keys=True) + "\n"  # fmt: skip
    try:
        store.write_bytes(f"{output}/{MANIFEST_FILE}", manifest_bytes(lines))
        store.write_bytes(f"{output}/{STATS_FILE}", stats.encode())
    except OSError as exc:  # the commit stands: these are conveniences, rewritten next time
        log.warning("could not write %s's %s and %s: %s", output, MANIFEST_FILE, STATS_FILE, exc)
    mark = time.monotonic()
    try:
        lease.check()  # fencing: a run that lost OUTPUT deletes nothing
        cleaned = cleanup(store, output, commit, lease, state)
    except (OSError, StorageError) as exc:  # the commit stands; the next commit cleans again
        log.warning("clean-up of %s failed, leftovers stay until the next commit: %s", output, exc)
        return 0
    abort_uploads(store, output, commit, lease, state)
    log.info(
        "commit timings: commit %.3f s, conveniences %.3f s, clean-up %.3f s (%d files, %d parts)",
        commit_seconds, mark - started, time.monotonic() - mark, cleaned, len(commit.parts),
    )  # fmt: skip
    return cleaned


def _known_runs(lease: Lease, state: OutputState, commit: Commit) -> dict[str, int]:
    """Run id -> epoch of every run whose files this run may delete: the runs this output's
    records and commits name, up to this run's own epoch (never a later run's)."""
    runs = dict(state.runs)
    runs.update((w.run, runs.get(w.run, 0)) for w in map(owned, commit.names()) if w and w.run)
    runs[lease.holder.run] = lease.epoch
    return {run: epoch for run, epoch in runs.items() if epoch <= lease.epoch}


def doomed(
    names: dict[str, float | None], commit: Commit, lease: Lease, state: OutputState
) -> list[str]:
    """The names (relative to OUTPUT, with their mtimes) the clean-up deletes: names of
    fmaprep's shape that belong to a known run and that the commit does not keep; earlier
    lease files; the records of known runs none of whose files the commit keeps; temporary
    names without a run id (commit and conveniences) older than this run's start."""
    keep = commit.names() | {SUCCESS_FILE, *CONVENIENCE_FILES}
    runs = _known_runs(lease, state, commit)
    kept_runs = {w.run for w in map(owned, commit.names()) if w and w.run} | {lease.holder.run}
    # A temporary name without a run id (a commit's or a convenience file's) is a dead run's
    # when it is older than this run's lease (this run wrote its own before the clean-up; a
    # run taking the lease meanwhile writes one for milliseconds), or older than TEMP_GRACE_S.
    # A remote store's clock may differ from ours: 1 s of margin there, none on local disk,
    # where a crashed run's temp can be well under 1 s older than the next run's lease.
    margin = 0.0 if is_local(state.output) else 1.0
    now = time.time()
    horizon = max(now - (time.monotonic() - lease.started) - margin, now - TEMP_GRACE_S)
    out = []
    for name, mtime in names.items():
        what = owned(name)
        if what is None or name in keep:
            continue
        if what.kind == "lease":
            gone = what.epoch is not None and what.epoch < lease.epoch
        elif what.kind == "record":
            gone = what.run in runs and what.run not in kept_runs
        elif what.kind == "temp" and what.run is None:
            gone = mtime is not None and mtime < horizon
        else:
            gone = what.run is not None and what.run in runs
        if gone:
            out.append(name)
    # records last: a clean-up that stops half-way still knows the runs whose files are left
    return sorted(out, key=lambda n: n.startswith(f"{CONTROL_DIR}/run-"))


def cleanup(store: Store, output: str, commit: Commit, lease: Lease, state: OutputState) -> int:
    """Delete what :func:`doomed` names; returns how many."""
    prefix = output.rstrip("/") + "/"
    names = {e.uri[len(prefix) :]: e.mtime for e in store.list_files(output)
             if e.uri.startswith(prefix)}  # fmt: skip
    gone = doomed(names, commit, lease, state)
    store.delete(prefix + name for name in gone)
    if gone:
        log.info("cleaned %d files of earlier generations and interrupted fmaprep runs", len(gone))
    return len(gone)


def abort_uploads(
    store: Store, output: str, commit: Commit, lease: Lease, state: OutputState
) -> int:
    """Abort the multipart uploads that killed tasks of known runs left open under OUTPUT (S3
    keeps their parts, and bills them, until aborted); returns how many. Never fails the run:
    the commit stands, and the next commit tries again."""
    prefix = output.rstrip("/") + "/"
    runs = _known_runs(lease, state, commit)
    keep = commit.names() | {SUCCESS_FILE, *CONVENIENCE_FILES}

    def ours(uri: str) -> bool:
        name = uri[len(prefix) :] if uri.startswith(prefix) else ""
        what = owned(name)
        return bool(what and what.run in runs and name not in keep)

    try:
        aborted = store.abort_uploads(output, ours)
    except OSError as exc:  # StoreError: refused (no s3:ListBucketMultipartUploads?) or failed
        log.warning("unfinished uploads under %s stay until the next commit: %s", output, exc)
        return 0
    if aborted:
        log.info("aborted %d unfinished multipart uploads under %s", aborted, output)
    return aborted
