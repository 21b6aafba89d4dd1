"""The preprocess job: extract (list inputs), transform and load (Spark), then commit the output.

``run_preprocess`` is what both ``fmaprep preprocess`` and ``jobs/preprocess.py`` call. Output is
built in a hidden staging sibling and renamed into place at the end, so OUTPUT is either absent,
the previous complete output, or the new complete output: never half-written.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fmaprep.config import Config
from fmaprep.outputs import (
    MANIFEST_FILE,
    STATS_FILE,
    manifest_bytes,
    parse_manifest,
    stats_bytes,
    summarize,
)
from fmaprep.partition import choose_partition_count, pack_by_bytes
from fmaprep.pipeline import InputFile
from fmaprep.progress import Progress
from fmaprep.spark import build_session
from fmaprep.storage import (
    HadoopFS,
    StorageError,
    drop_checksum_files,
    is_local,
    list_local_inputs,
    resolve_uri,
    sibling,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    output: str
    counts: dict[str, Any]
    wall_seconds: float
    failures: list[dict[str, Any]]
    error_rate_exceeded: bool


def list_inputs(spark_context: Any, input_uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
    if is_local(input_uri):
        return list_local_inputs(input_uri, extensions)
    return HadoopFS(spark_context, input_uri).list_files(input_uri, extensions)


def _previous_run(fs: HadoopFS, output_uri: str, config: Config) -> list[dict[str, Any]]:
    """For --mode resume: the manifest lines of an existing output made with the same config."""
    if not fs.exists(f"{output_uri}/{STATS_FILE}"):
        raise StorageError(
            f"{output_uri} is not a complete fmaprep output (no {STATS_FILE}); use --mode overwrite"
        )
    stats = json.loads(fs.read_bytes(f"{output_uri}/{STATS_FILE}"))
    if stats.get("config", {}).get("pipeline") != config.to_dict()["pipeline"]:
        raise StorageError(
            f"{output_uri} was made with another pipeline config; use --mode overwrite"
        )
    return parse_manifest(fs.read_bytes(f"{output_uri}/{MANIFEST_FILE}"))


def _commit(fs: HadoopFS, staging: str, output_uri: str, mode: str, run_tag: str) -> None:
    if mode == "resume" and fs.exists(output_uri):
        # add the new partitions under run-unique names, then swap in manifest and stats
        for name in fs.list_names(staging):
            if name.startswith("part-"):
                fs.rename(
                    f"{staging}/{name}", f"{output_uri}/part-{run_tag}-{name[len('part-') :]}"
                )
        for name in (MANIFEST_FILE, STATS_FILE):
            fs.delete(f"{output_uri}/{name}")
            fs.rename(f"{staging}/{name}", f"{output_uri}/{name}")
        fs.delete(staging)
        return
    if fs.exists(output_uri):
        if mode != "overwrite":
            raise StorageError(
                f"{output_uri} appeared while the job ran; new output left at {staging}"
            )
        old = sibling(output_uri, "old")
        fs.rename(output_uri, old)
        fs.rename(staging, output_uri)
        fs.delete(old)
    else:
        fs.rename(staging, output_uri)


def run_preprocess(
    input_arg: str, output_arg: str, config: Config, session: Any = None
) -> JobResult:
    started = time.monotonic()
    input_uri, output_uri = resolve_uri(input_arg), resolve_uri(output_arg)
    own_session = session is None
    if own_session:
        session = build_session(config.job.master, conf=config.job.spark_conf)
    sc = session.sparkContext
    try:
        fs = HadoopFS(sc, output_uri)
        mode = config.job.mode
        previous: list[dict[str, Any]] = []
        if fs.exists(output_uri):
            if mode == "error":
                raise StorageError(
                    f"output {output_uri} exists (use --mode overwrite to replace it, "
                    "or --mode resume to add only what is missing)"
                )
            if mode == "resume":
                previous = _previous_run(fs, output_uri, config)

        # extract
        files = list_inputs(sc, input_uri, config.job.extensions)
        if not files:
            raise StorageError(
                f"no audio files ({', '.join(config.job.extensions)}) under {input_uri}"
            )
        kept = [line for line in previous if line["status"] == "ok"]
        done = {line["source"] for line in kept}
        todo = [f for f in files if f.source not in done]
        log.info(
            "%d input files (%.1f MB); %d to process",
            len(files),
            sum(f.size for f in files) / 1e6,
            len(todo),
        )

        # transform + load
        staging = sibling(output_uri, "staging")
        new_lines: list[dict[str, Any]] = []
        if todo:
            n = config.job.partitions or choose_partition_count(
                sum(f.size for f in todo),
                len(todo),
                sc.defaultParallelism,
                int(config.job.target_partition_mb * 1e6),
            )
            bins = pack_by_bytes(todo, n)
            log.info("processing in %d partitions on %s", len(bins), sc.master)
            from fmaprep.sparkjob import saver_for

            new_lines = saver_for(config.job.format)(
                sc, bins, config.pipeline, staging, lambda poll: Progress(len(todo), poll)
            )
        else:
            fs.mkdirs(staging)

        lines = kept + new_lines
        counts = summarize(lines)
        wall = time.monotonic() - started
        extra = {
            "input": input_uri,
            "output": output_uri,
            "master": sc.master,
            "partitions": sc.defaultParallelism if not todo else len(bins),
            "processed_this_run": len(todo),
        }
        fs.write_bytes(f"{staging}/{MANIFEST_FILE}", manifest_bytes(lines))
        fs.write_bytes(
            f"{staging}/{STATS_FILE}", stats_bytes(counts, config.to_dict(), wall, extra)
        )
        drop_checksum_files(staging)
        _commit(fs, staging, output_uri, mode, run_tag=f"{int(time.time())}")
    finally:
        if own_session:
            session.stop()
    failures = [line for line in lines if line["status"] != "ok"]
    rate = counts["failed"] / counts["inputs"] if counts["inputs"] else 0.0
    return JobResult(output_uri, counts, wall, failures, rate > config.job.max_error_rate)
