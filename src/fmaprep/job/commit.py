"""Committing OUTPUT without copies (README, "Commit protocol"; docs/commit.md).

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
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fmaprep.config import Config
from fmaprep.formats.commit import MANIFEST_DIR, SUCCESS_FILE, Commit, Part, parse_commit
from fmaprep.formats.manifest import MANIFEST_FILE, STATS_FILE, library_versions, manifest_bytes
from fmaprep.model import InputFile
from fmaprep.spark.writers import TaskResult
from fmaprep.storage.stores import Store
from fmaprep.storage.uris import StorageError

log = logging.getLogger(__name__)

CONVENIENCE_FILES = (MANIFEST_FILE, STATS_FILE)
# Fault injection for the crash tests: the driver dies (os._exit, as a kill would) on reaching
# the named step. Unset in every real run.
CRASH_ENV = "FMAPREP_TEST_CRASH_AT"


def crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        log.warning("%s=%s: the driver exits here, as if killed", CRASH_ENV, step)
        os._exit(137)


def crash_during_tasks(poll: Callable[[], tuple[int, int]]) -> None:
    """``FMAPREP_TEST_CRASH_AT=tasks:N`` (or ``tasks:N+MS``): the driver dies once N files are
    done (and MS milliseconds more: a moment inside the tasks still running)."""
    step = os.environ.get(CRASH_ENV, "")
    if not step.startswith("tasks:"):
        return
    files, _, delay_ms = step.split(":", 1)[1].partition("+")

    def watch() -> None:
        while poll()[0] < int(files):
            time.sleep(0.02)
        time.sleep(int(delay_ms or 0) / 1000)
        crash_point(step)

    threading.Thread(target=watch, daemon=True).start()


def config_key(config: Config) -> str:
    """What must match for --mode resume: the pipeline settings and the versions of every
    library that touches the samples (Spark and Python do not)."""
    versions = {k: v for k, v in library_versions().items() if k not in ("pyspark", "python")}
    return config.pipeline.fingerprint(versions)


@dataclass
class OutputState:
    """What OUTPUT holds now: the committed generation (if any) and every file's size."""

    output: str
    commit: Commit | None
    legacy: bool  # a _SUCCESS that is not a fmaprep commit (Spark's, or an older fmaprep's)
    sizes: dict[str, int] = field(default_factory=dict)  # name relative to OUTPUT -> bytes

    @property
    def exists(self) -> bool:
        return bool(self.sizes)


def load_state(store: Store, output: str) -> OutputState:
    """One listing of OUTPUT, and its ``_SUCCESS``."""
    prefix = output.rstrip("/") + "/"
    sizes = {
        e.uri[len(prefix) :]: e.size for e in store.list_files(output) if e.uri.startswith(prefix)
    }
    commit, legacy = None, False
    if SUCCESS_FILE in sizes:
        commit = parse_commit(store.read_bytes(prefix + SUCCESS_FILE), f"{output}/{SUCCESS_FILE}")
        legacy = commit is None
    return OutputState(output, commit, legacy, sizes)


def check_mode(state: OutputState, mode: str) -> None:
    """Refuse an existing OUTPUT unless the mode says what to do with it."""
    if not state.exists or mode == "overwrite":
        return
    if mode == "error":
        if state.commit is not None or state.legacy:
            raise StorageError(
                f"output {state.output} exists (use --mode overwrite to replace it, "
                "or --mode resume to add only what is missing)"
            )
        raise StorageError(
            f"output {state.output} holds an interrupted run's work but no commit "
            "(--mode resume keeps its finished tasks, --mode overwrite starts again)"
        )
    if state.legacy:
        raise StorageError(
            f"{state.output} was written by Spark or an older fmaprep (its {SUCCESS_FILE} is "
            "not a fmaprep commit); use --mode overwrite"
        )


@dataclass
class Kept:
    """What --mode resume keeps: one ok line per input, and the parts that hold their records."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)

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
        return Kept([ln for ln in self.lines if ln["source"] not in sources], parts)


def _read_shard(
    store: Store, output: str, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = [json.loads(x) for x in store.read_bytes(f"{output}/{name}").decode().splitlines() if x]
    header = rows[0].get("_task", {}) if rows and "_task" in rows[0] else {}
    return header, rows[1:] if header else rows


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
    shards = [n for n in state.sizes if n.startswith(f"{MANIFEST_DIR}/") and n.endswith(".jsonl")]
    for shard in sorted(shards):
        header, lines = _read_shard(store, state.output, shard)
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
    return kept


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
) -> Commit:
    """Write the generation's own small shard (kept and driver lines), then ``_SUCCESS``."""
    shard = f"{MANIFEST_DIR}/{generation}-driver.jsonl"
    rows = [{"_task": {"part": None}}, *kept.lines, *driver_lines]
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    crash_point("before-driver-shard")
    store.write_bytes(f"{output}/{shard}", data)
    parts = [*kept.parts, *(Part(r.part, r.part_bytes, r.records) for r in results)]
    manifest = [(shard, len(data)), *((r.shard, r.shard_bytes) for r in results)]
    commit = Commit(generation, fmt, tuple(parts), tuple(manifest), stats)
    crash_point("before-commit")
    with store.open_write(f"{output}/{SUCCESS_FILE}") as writer:  # the commit
        writer.write(commit.to_bytes())
        # local/HDFS: written under a temporary name, not yet renamed over the old _SUCCESS
        writer.commit(staged=lambda: crash_point("commit-staged"))
    return commit


def finish(
    store: Store, output: str, commit: Commit, lines: list[dict[str, Any]], commit_seconds: float
) -> int:
    """After the commit: the convenience files, then delete what the commit does not name."""
    started = time.monotonic()
    crash_point("before-conveniences")
    store.write_bytes(f"{output}/{MANIFEST_FILE}", manifest_bytes(lines))
    stats = json.dumps({**commit.stats, "commit_s": round(commit_seconds, 3)}, indent=2,
                       sort_keys=True) + "\n"  # fmt: skip
    store.write_bytes(f"{output}/{STATS_FILE}", stats.encode())
    crash_point("before-cleanup")
    mark = time.monotonic()
    try:
        cleaned = cleanup(store, output, commit)
    except Exception as exc:  # the commit stands; the next commit cleans again
        log.warning("clean-up of %s failed, leftovers stay until the next commit: %s", output, exc)
        return 0
    abort_uploads(store, output, commit)
    log.info(
        "commit timings: commit %.3f s, conveniences %.3f s, clean-up %.3f s (%d files, %d parts)",
        commit_seconds, mark - started, time.monotonic() - mark, cleaned, len(commit.parts),
    )  # fmt: skip
    return cleaned


def cleanup(store: Store, output: str, commit: Commit) -> int:
    """Delete every file under OUTPUT that ``commit`` does not keep; returns how many."""
    keep = commit.names() | {SUCCESS_FILE, *CONVENIENCE_FILES}
    prefix = output.rstrip("/") + "/"
    doomed = [e.uri for e in store.list_files(output) if e.uri[len(prefix) :] not in keep]
    store.delete(doomed[: len(doomed) // 2])
    crash_point("mid-cleanup")
    store.delete(doomed[len(doomed) // 2 :])
    if doomed:
        log.info("cleaned %d files of earlier generations and interrupted attempts", len(doomed))
    return len(doomed)


def abort_uploads(store: Store, output: str, commit: Commit) -> int:
    """Abort the multipart uploads that killed tasks left open under OUTPUT (S3 keeps their
    parts, and bills them, until aborted); returns how many. Never fails the run: the commit
    stands, and the next commit tries again."""
    prefix = output.rstrip("/") + "/"
    keep = {prefix + name for name in commit.names() | {SUCCESS_FILE, *CONVENIENCE_FILES}}
    try:
        aborted = store.abort_uploads(output, keep)
    except OSError as exc:  # StoreError: refused (no s3:ListBucketMultipartUploads?) or failed
        log.warning("unfinished uploads under %s stay until the next commit: %s", output, exc)
        return 0
    if aborted:
        log.info("aborted %d unfinished multipart uploads under %s", aborted, output)
    return aborted


def read_lines(store: Store, output: str, commit: Commit) -> Iterable[dict[str, Any]]:
    """Every manifest line of a committed generation (the shards it names)."""
    for name, _ in commit.manifest:
        _, lines = _read_shard(store, output, name)
        yield from lines
