"""The preprocess job: extract (list inputs), transform and load (Spark), then commit the output.

``run_preprocess`` is what both ``fmaprep preprocess`` and ``jobs/preprocess.py`` call. Tasks
write their parts into OUTPUT at names of their own; ``_SUCCESS``, published last, names the
generation (:mod:`fmaprep.job.commit`), so a reader sees the previous or the new output whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from fmaprep.config import Config, ConfigError, RerunMode
from fmaprep.formats.manifest import stats_dict, summarize
from fmaprep.job.commit import (
    Kept,
    OutputState,
    check_mode,
    check_owned,
    config_key,
    finish,
    load_state,
    publish,
    resumable,
)
from fmaprep.job.interrupted import INTERRUPTED
from fmaprep.job.lease import Holder, Lease, refuse_if_held, yarn_attempt
from fmaprep.job.ownership import CONTROL_DIR
from fmaprep.job.shared_paths import local_marks
from fmaprep.job.summary import JobResult
from fmaprep.model import InputFile, TrackError
from fmaprep.pipeline import failed_line
from fmaprep.progress import JobProgress, human_bytes
from fmaprep.spark.partition import choose_partition_count, pack_by_bytes
from fmaprep.spark.session import build_session, check_master, is_local_master, stop_session
from fmaprep.spark.writers import TaskPlan, TaskResult, run_tasks
from fmaprep.storage.clients import StoreSettings, open_store, warm_up
from fmaprep.storage.faults import (
    EnvironmentFaultError,
    check_reachable,
    store_answers,
)
from fmaprep.storage.listing import list_inputs
from fmaprep.storage.s3_settings import hdfs_spark_conf, redact_config
from fmaprep.storage.uris import StorageError, check_apart, is_local, local_path, resolve_uri

log = logging.getLogger(__name__)


def _dedupe(
    sc: Any,
    todo: list[InputFile],
    kept: Kept,
    *,
    files: list[InputFile],
    config: Config,
    stores: StoreSettings,
) -> tuple[list[InputFile], list[dict[str, Any]], Kept]:
    """Keep the first source of each content and return manifest lines for the rest: kept
    records first (those a --dedupe run chose, then in name order), then the inputs to process
    in name order. The tasks hash the inputs to process and the kept inputs whose line has no
    sha1 (an earlier run without --dedupe), so a resume learns every kept content."""
    from fmaprep.spark.inputs import hash_inputs

    by_source = {f.source: f for f in files}
    unhashed = [by_source[ln["source"]] for ln in kept.lines if not ln.get("sha1")]
    if not todo and not unhashed:
        return todo, [], kept
    wanted = todo + unhashed
    digests = hash_inputs(sc, pack_by_bytes(wanted, _partition_count(sc, wanted, config)), stores)
    first: dict[str, str] = {}  # sha1 -> the source whose record holds that content
    kept, duplicates = _dedupe_kept(kept, digests, by_source, first)
    dropped = len(duplicates)
    keep = []
    for f in sorted(todo, key=lambda f: f.source):
        digest = digests[f.source]
        if digest in first:
            duplicates.append(_duplicate_line(f, first[digest], digest))
        else:
            first[digest] = f.source
            keep.append(dataclasses.replace(f, metadata={**f.metadata, "sha1": digest}))
    log.info(
        "dedupe: %d distinct contents, %d duplicates (%d of them kept by an earlier run)",
        len(first), len(duplicates), dropped,
    )  # fmt: skip
    return keep, duplicates, kept


def _dedupe_kept(
    kept: Kept, digests: dict[str, str], by_source: dict[str, InputFile], first: dict[str, str]
) -> tuple[Kept, list[dict[str, Any]]]:
    """The kept records, one per content (filling ``first``), and duplicate lines for the rest:
    an earlier run without --dedupe may have kept a record for each copy."""
    duplicates, dropped, lines = [], set(), []
    for line in sorted(kept.lines, key=lambda ln: ("sha1" not in ln, ln["source"])):
        digest = line.get("sha1") or digests[line["source"]]
        if digest in first:
            duplicates.append(_duplicate_line(by_source[line["source"]], first[digest], digest))
            dropped.add(line["source"])
        else:
            first[digest] = line["source"]
            lines.append({**line, "sha1": digest})  # so the next resume need not hash it
    return dataclasses.replace(kept.without(dropped), lines=lines), duplicates


def _duplicate_line(f: InputFile, original: str, digest: str) -> dict[str, Any]:
    return {"track_id": f.track_id, "source": f.source, "status": "duplicate",
            "duplicate_of": original, "sha1": digest, "bytes": f.size, "mtime": f.mtime,
            "identity": f.identity()}  # fmt: skip


def _partition_count(sc: Any, files: list[InputFile], config: Config) -> int:
    return config.job.partitions or choose_partition_count(
        sum(f.size for f in files),
        len(files),
        sc.defaultParallelism,
        int(config.job.target_partition_mb * 1e6),
    )


def run_preprocess(
    input_arg: str, output_arg: str, config: Config, session: Any = None
) -> JobResult:
    """The job: resolve locations, take OUTPUT's lease, then extract, transform and load, and
    commit atomically. What can be refused is refused before Spark starts."""
    started = time.monotonic()
    INTERRUPTED.clear()
    if session is None:
        try:
            check_master(config.job.master)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    input_uri, output_uri = resolve_uri(input_arg), resolve_uri(output_arg)
    settings = StoreSettings.from_env(endpoint=config.job.s3_endpoint)
    input_uri, output_uri = settings.full_uri(input_uri), settings.full_uri(output_uri).rstrip("/")
    check_apart(input_uri, output_uri)
    listed = None  # a local INPUT is listed now: a wrong path is refused before Spark starts
    if is_local(input_uri):
        listed = _list(input_uri, config, settings)
    for uri in (input_uri, output_uri):
        check_reachable(uri, settings)
    made = is_local(output_uri) and not os.path.isdir(local_path(output_uri))  # we create it
    lease, mode, found = take_output(output_uri, config.job.mode, settings)
    fresh = not found.exists  # what OUTPUT held before this run wrote its lease
    own_session = session is None
    working = False  # once the job runs, its lease and record stay (a resume needs them)
    try:
        if own_session:
            warm_up([input_uri, output_uri], settings)
            # of the storage settings only HDFS's default filesystem (so hdfs:///x means the
            # NameNode the hdfs tool uses): the JVM never touches S3 (the tasks use boto3), so
            # no S3A jars and no credentials go into Spark's configuration
            hdfs = hdfs_spark_conf()
            if hdfs:
                log.info("storage settings: %s", hdfs)
            session = build_session(config.job.master, conf={**hdfs, **config.job.spark_conf})
            _note_interrupts()
        if not is_local_master(session.sparkContext.master):
            if session.sparkContext.uiWebUrl:  # on EMR also reachable through YARN's proxy
                log.info("Spark UI: %s", session.sparkContext.uiWebUrl)
            # fail in seconds with one clear line when the executors cannot import fmaprep, or
            # cannot see a local INPUT/OUTPUT (each node would use its own disk)
            from fmaprep.spark.workerenv import check_workers

            with local_marks(input_uri, output_uri) as marks:
                check_workers(session.sparkContext, config.pipeline, marks)
        job = dataclasses.replace(config.job, mode=mode)
        working = True
        return _run(session.sparkContext, input_uri, output_uri,
                    dataclasses.replace(config, job=job), started, lease, listed)  # fmt: skip
    finally:
        lease.release()
        if fresh and not working:
            withdraw(output_uri, settings, lease, remove_folder=made)
        if own_session and session is not None:
            try:
                stop_session(session)
            except Exception as exc:  # after Ctrl-C the gateway may be gone: the job's own
                log.debug("stopping Spark failed: %s", exc)  # error is the one to report


def withdraw(
    output_uri: str, settings: StoreSettings, lease: Lease, *, remove_folder: bool
) -> None:
    """A run refused before its work (Spark or the workers not usable) on an OUTPUT it found
    empty leaves it as it found it: its lease file and run record go, and on local disk the
    folders it made, when they are empty. Never raises: what stays is fmaprep's own."""
    out = open_store(output_uri, settings)
    try:
        out.delete([lease.uri, f"{output_uri}/{CONTROL_DIR}/run-{lease.holder.run}.json"])
        if is_local(output_uri):
            folders = [f"{local_path(output_uri)}/{CONTROL_DIR}"]
            folders += [local_path(output_uri)] if remove_folder else []
            for folder in folders:
                with contextlib.suppress(OSError):  # not empty, or already gone
                    os.rmdir(folder)
    except OSError as exc:
        log.debug("could not withdraw from %s: %s", output_uri, exc)


def _note_interrupts() -> None:
    """Remember a SIGINT before PySpark's own handler (cancel the jobs, raise
    KeyboardInterrupt) runs: what the py4j call in progress then raises is not always a
    KeyboardInterrupt, and the CLI must still say "interrupted" and exit 130."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        INTERRUPTED.set()
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def take_output(
    output_uri: str, mode: RerunMode, settings: StoreSettings
) -> tuple[Lease, RerunMode, OutputState]:
    """Refuse an OUTPUT that is not fmaprep's, or that a live run writes, or whose contents the
    mode does not allow; else take its lease and write this run's record. Returns the held lease
    (renewing), the mode to run in (a later attempt of the YARN application that held OUTPUT
    continues its work: resume, whatever mode it was given) and what OUTPUT held before."""
    out = open_store(output_uri, settings)
    app, attempt = yarn_attempt()
    holder = Holder.here(new_generation(), app, attempt)
    state = load_state(out, output_uri)
    check_owned(state)  # before anything is written into a folder that is not fmaprep's
    previous = refuse_if_held(out, output_uri, holder)
    earlier = previous.holder if previous else None
    if earlier and app and earlier.app == app and (attempt or 0) > (earlier.attempt or 0):
        # an earlier attempt of this application, ended (released: it failed) or killed
        log.warning("attempt %s of %s continues attempt %s's work (--mode resume)",
                    attempt, app, earlier.attempt)  # fmt: skip
        mode = "resume"
    check_mode(state, mode)
    lease = Lease.take(out, output_uri, holder)
    try:
        record = json.dumps(lease.record(mode), sort_keys=True).encode()
        out.create_new(f"{output_uri}/{CONTROL_DIR}/run-{holder.run}.json", record)
    except BaseException:
        lease.release()
        raise
    return lease.start(), mode, state


def _list(input_uri: str, config: Config, stores: StoreSettings) -> list[InputFile]:
    files = list_inputs(input_uri, config.job.extensions, stores)
    if not files:
        raise StorageError(f"no audio files ({', '.join(config.job.extensions)}) under {input_uri}")
    return files


def _run(  # noqa: PLR0917
    sc: Any,
    input_uri: str,
    output_uri: str,
    config: Config,
    started: float,
    lease: Lease,
    listed: list[InputFile] | None,
) -> JobResult:
    timings = {"start_s": time.monotonic() - started}  # where the time went, for _stats.json
    # the driver and tasks reach HDFS by the driver's Hadoop configuration (default filesystem,
    # NameNode HTTP address)
    hconf = sc._jsc.hadoopConfiguration()
    stores = StoreSettings.from_hadoop_conf(hconf, endpoint=config.job.s3_endpoint)
    input_uri, output_uri = stores.full_uri(input_uri), stores.full_uri(output_uri).rstrip("/")
    out = open_store(output_uri, stores)
    state = load_state(out, output_uri)  # again, holding the lease: what a dead holder left
    check_mode(state, config.job.mode)

    # extract: what to process, what an earlier run already did, what is a duplicate
    mark = time.monotonic()
    files = listed if listed is not None else _list(input_uri, config, stores)
    timings["list_s"] = time.monotonic() - mark
    files, driver_lines = _one_per_track_id(files)
    files, over = _over_limits(files, config)
    driver_lines += over
    kept = Kept()
    if config.job.mode == "resume" and state.exists:
        kept = resumable(out, state, files, config)
    done = {line["source"] for line in kept.lines}
    todo = [f for f in files if f.source not in done]
    log.info(
        "%d input files (%.1f MB); %d to process",
        len(files),
        sum(f.size for f in files) / 1e6,
        len(todo),
    )
    if config.job.dedupe:
        todo, duplicates, kept = _dedupe(sc, todo, kept, files=files, config=config, stores=stores)
        driver_lines += duplicates

    check_space(output_uri, todo)

    # transform + load: every task writes its part and manifest shard into OUTPUT
    generation = lease.holder.run
    results: list[TaskResult] = []
    if todo:
        bins = pack_by_bytes(todo, _partition_count(sc, todo, config))
        log.info("processing %d files in %d partitions on %s", len(todo), len(bins), sc.master)
        plan = TaskPlan(
            output_uri, generation, config.job.format, config.pipeline, stores, config_key(config)
        )
        mark = time.monotonic()
        results = run_tasks(sc, bins, plan, lambda poll: JobProgress(
            len(todo), poll, stalled=_stall_probe([input_uri, output_uri], stores),
            waiting=lambda: _active_tasks(sc)))  # fmt: skip
        timings["tasks_s"] = time.monotonic() - mark
    timings["plan_s"] = time.monotonic() - started - sum(timings.values())
    lines = kept.lines + driver_lines + [line for r in results for line in r.lines]
    counts = summarize(lines)
    wall = time.monotonic() - started
    extra = {
        "input": input_uri,
        "output": output_uri,
        "master": sc.master,
        "cores": sc.defaultParallelism,  # what "per core" in the report divides by
        "partitions": len(results),
        "processed_this_run": len(todo),
        "config_key": config_key(config),
        "generation": generation,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    stats = stats_dict(counts, redact_config(config.to_dict()), wall, extra)

    # commit: _SUCCESS names the new generation; then conveniences and clean-up
    mark = time.monotonic()
    commit = publish(
        out, output_uri, generation, config.job.format, kept, results, driver_lines, stats, lease
    )
    finish(out, output_uri, commit, lines, time.monotonic() - mark, lease, state)
    failures = [line for line in lines if line["status"] == "error"]
    rate = counts["failed"] / counts["inputs"] if counts["inputs"] else 0.0
    return JobResult(output_uri, counts, wall, failures, rate > config.job.max_error_rate)


def _stall_probe(uris: list[str], stores: StoreSettings) -> Callable[[], str | None]:
    """What of INPUT's and OUTPUT's stores does not answer now (None: all do)."""

    def probe() -> str | None:
        return next((w for w in (store_answers(u, stores) for u in uris) if w), None)

    return probe


def _active_tasks(sc: Any) -> int:
    tracker = sc.statusTracker()
    stages = (tracker.getStageInfo(s) for s in tracker.getActiveStageIds())
    return sum(stage.numActiveTasks for stage in stages if stage is not None)


MP3_OUTPUT_RATIO = 0.5  # 8 kHz mu-law is 8 kB/s; a 128 kbit/s mp3 is 16 kB/s


def check_space(output_uri: str, todo: list[InputFile]) -> None:
    """A local OUTPUT's file system must have room for an estimate of the output (from the mp3
    inputs' bytes; other formats are not estimated): a fault before the tasks, not after."""
    if not is_local(output_uri):
        return
    need = MP3_OUTPUT_RATIO * sum(f.size for f in todo if f.source.lower().endswith(".mp3"))
    path = local_path(output_uri)
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise EnvironmentFaultError(
            f"no space for OUTPUT {output_uri}: about {human_bytes(need)} needed for "
            f"{len(todo)} inputs, {human_bytes(free)} free"
        )


def new_generation() -> str:
    """A run's id: UTC time (so ids sort by age) and a random tag."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + secrets.token_hex(3)


def _one_per_track_id(files: list[InputFile]) -> tuple[list[InputFile], list[dict[str, Any]]]:
    """One input per track id (docs/inputs.md, "One track id, one record"): of the inputs that
    share an id (``000/000009.mp3`` and ``001/000009.mp3``, ``song.mp3`` and ``song.wav``) the
    first in the listing's order (by source name) is processed, and each other one is a
    ``duplicate`` line with ``reason: duplicate_id`` naming it."""
    first: dict[str, str] = {}
    keep, lines = [], []
    for f in files:
        original = first.setdefault(f.track_id, f.source)
        if original == f.source:
            keep.append(f)
            continue
        log.warning("%s has the track id %s of %s: not processed (duplicate_id)",
                    f.source, f.track_id, original)  # fmt: skip
        lines.append({"track_id": f.track_id, "source": f.source, "status": "duplicate",
                      "reason": "duplicate_id", "duplicate_of": original, "bytes": f.size,
                      "mtime": f.mtime, "identity": f.identity()})  # fmt: skip
    return keep, lines


def _over_limits(
    files: list[InputFile], config: Config
) -> tuple[list[InputFile], list[dict[str, Any]]]:
    """Inputs over ``max_file_mb`` become ``unsupported`` lines from their listed size alone:
    not a byte of them is read."""
    limit = config.pipeline.max_file_mb * 1e6
    lines = [
        failed_line(f, TrackError("unsupported", f"{f.size / 1e6:.0f} MB is over max_file_mb="
                                  f"{config.pipeline.max_file_mb:g}"))
        for f in files if f.size > limit
    ]  # fmt: skip
    return [f for f in files if f.size <= limit], lines
