"""The preprocess job: extract (list inputs), transform and load (Spark), then commit the output.

``run_preprocess`` is what both ``fmaprep preprocess`` and ``jobs/preprocess.py`` call. Output is
built in a hidden staging sibling and renamed into place at the end, so OUTPUT is either absent,
the previous complete output, or the new complete output: never half-written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from fmaprep.config import Config
from fmaprep.outputs import (
    MANIFEST_FILE,
    STATS_FILE,
    library_versions,
    manifest_bytes,
    parse_manifest,
    stats_bytes,
    summarize,
)
from fmaprep.partition import choose_partition_count, pack_by_bytes
from fmaprep.pipeline import InputFile
from fmaprep.progress import Progress
from fmaprep.spark import build_session, is_local_master, stop_session
from fmaprep.storage import (
    TRACKS_FILE,
    HadoopFS,
    StorageError,
    drop_checksum_files,
    is_local,
    list_local_inputs,
    local_path,
    parse_track_metadata,
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
    fs = HadoopFS(spark_context, input_uri)
    files = fs.list_files(input_uri, extensions)
    tracks = f"{input_uri.rstrip('/')}/{TRACKS_FILE}"
    if files and fs.exists(tracks):  # acquisition's metadata, next to the audio as locally
        table = parse_track_metadata(fs.read_bytes(tracks).decode("utf-8").splitlines())
        files = [dataclasses.replace(f, metadata=table.get(f.track_id, {})) for f in files]
    return files


def config_key(config: Config) -> str:
    """What must match for --mode resume: the pipeline settings and the versions of every
    library that touches the samples (Spark and Python do not)."""
    versions = {k: v for k, v in library_versions().items() if k not in ("pyspark", "python")}
    return config.pipeline.fingerprint(versions)


def _resumable_lines(
    fs: HadoopFS, output_uri: str, config: Config, files: list[InputFile]
) -> list[dict[str, Any]]:
    """For --mode resume: the ok manifest lines of an existing output, after checking that it
    was made with the same config and libraries, and that none of its inputs changed since."""
    if not fs.exists(f"{output_uri}/{STATS_FILE}"):
        raise StorageError(
            f"{output_uri} is not a complete fmaprep output (no {STATS_FILE}); use --mode overwrite"
        )
    stats = json.loads(fs.read_bytes(f"{output_uri}/{STATS_FILE}"))
    if stats.get("config_key") != config_key(config):
        raise StorageError(
            f"{output_uri} was made with another pipeline config or library versions "
            f"(key {stats.get('config_key')}, now {config_key(config)}); use --mode overwrite"
        )
    manifest = parse_manifest(fs.read_bytes(f"{output_uri}/{MANIFEST_FILE}"))
    ok = {line["source"]: line for line in manifest if line["status"] == "ok"}

    def changed_since(f: InputFile) -> bool:
        line = ok.get(f.source)
        return line is not None and (line.get("bytes"), line.get("mtime")) != (f.size, f.mtime)

    changed = [f.source for f in files if changed_since(f)]
    if changed:
        raise StorageError(
            f"{len(changed)} input(s) changed since {output_uri} was made (first: {changed[0]}); "
            "their old records cannot be replaced in place: use --mode overwrite"
        )
    return list(ok.values())


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


def _check_output(fs: HadoopFS, output_uri: str, mode: str) -> bool:
    """Whether OUTPUT exists; refuses an existing one unless the mode says what to do with it."""
    if is_local(output_uri):
        parent, _, name = local_path(output_uri).rstrip("/").rpartition("/")
        if os.path.isdir(parent or "/"):
            leftovers = sorted(
                n for n in os.listdir(parent or "/") if n.startswith(f".{name}.fmaprep-")
            )
            if leftovers:
                log.warning("left by interrupted runs (safe to delete): %s", ", ".join(leftovers))
    exists = fs.exists(output_uri)
    if exists and mode == "error":
        raise StorageError(
            f"output {output_uri} exists (use --mode overwrite to replace it, "
            "or --mode resume to add only what is missing)"
        )
    return exists


def _dedupe(
    sc: Any, files: list[InputFile], config: Config
) -> tuple[list[InputFile], list[dict[str, Any]]]:
    """Hash every input's bytes (in Spark); keep the first source of each content, in name
    order, and return manifest lines for the rest."""
    from fmaprep.sparkjob import hash_inputs

    bins = pack_by_bytes(files, _partition_count(sc, files, config))
    digests = hash_inputs(sc, bins)
    first: dict[str, str] = {}
    keep, duplicates = [], []
    for f in sorted(files, key=lambda f: f.source):
        digest = digests[f.source]
        if digest in first:
            duplicates.append(
                {"track_id": f.track_id, "source": f.source, "status": "duplicate",
                 "duplicate_of": first[digest], "sha1": digest, "bytes": f.size, "mtime": f.mtime}
            )  # fmt: skip
        else:
            first[digest] = f.source
            keep.append(dataclasses.replace(f, metadata={**f.metadata, "sha1": digest}))
    log.info("dedupe: %d distinct contents, %d duplicates", len(keep), len(duplicates))
    return keep, duplicates


def _partition_count(sc: Any, files: list[InputFile], config: Config) -> int:
    return config.job.partitions or choose_partition_count(
        sum(f.size for f in files),
        len(files),
        sc.defaultParallelism,
        int(config.job.target_partition_mb * 1e6),
    )


def _transform_and_save(
    sc: Any, files: list[InputFile], config: Config, staging: str, fs: HadoopFS
) -> tuple[list[dict[str, Any]], int]:
    """Run the pipeline over ``files`` in Spark, records to ``staging``; (manifest lines, parts)."""
    if not files:
        fs.mkdirs(staging)
        return [], 0
    from fmaprep.sparkjob import saver_for

    bins = pack_by_bytes(files, _partition_count(sc, files, config))
    log.info("processing %d files in %d partitions on %s", len(files), len(bins), sc.master)
    save = saver_for(config.job.format)
    lines = save(sc, bins, config.pipeline, staging, lambda poll: Progress(len(files), poll))
    return lines, len(bins)


def storage_spark_conf(uris: list[str], config: Config) -> dict[str, str]:
    """Spark settings the URIs need (S3A endpoint, jars and credentials; the HDFS NameNode).
    Secrets come from the environment and are never logged."""
    from fmaprep.storage_conf import is_s3_uri, load_s3_settings, redact, spark_storage_conf

    settings = None
    if any(is_s3_uri(uri) for uri in uris):
        settings = load_s3_settings(endpoint=config.job.s3_endpoint)
    conf = spark_storage_conf(uris, settings)
    if conf:
        log.info("storage settings: %s", redact(conf))
    return conf


def run_preprocess(
    input_arg: str, output_arg: str, config: Config, session: Any = None
) -> JobResult:
    """The job: resolve locations, then extract, transform and load, and commit atomically."""
    started = time.monotonic()
    input_uri, output_uri = resolve_uri(input_arg), resolve_uri(output_arg)
    own_session = session is None
    if own_session:
        conf = {**storage_spark_conf([input_uri, output_uri], config), **config.job.spark_conf}
        session = build_session(config.job.master, conf=conf)
    try:
        if not is_local_master(session.sparkContext.master):
            # fail in seconds with one clear line when the executors cannot import fmaprep
            from fmaprep.workerenv import check_workers

            check_workers(session.sparkContext, config.pipeline)
        return _run(session.sparkContext, input_uri, output_uri, config, started)
    finally:
        if own_session:
            stop_session(session)


def _run(sc: Any, input_uri: str, output_uri: str, config: Config, started: float) -> JobResult:
    fs = HadoopFS(sc, output_uri)
    mode = config.job.mode
    exists = _check_output(fs, output_uri, mode)

    # extract: what to process, what an earlier run already did, what is a duplicate
    files = list_inputs(sc, input_uri, config.job.extensions)
    if not files:
        raise StorageError(f"no audio files ({', '.join(config.job.extensions)}) under {input_uri}")
    kept = _resumable_lines(fs, output_uri, config, files) if exists and mode == "resume" else []
    done = {line["source"] for line in kept}
    todo = [f for f in files if f.source not in done]
    log.info(
        "%d input files (%.1f MB); %d to process",
        len(files),
        sum(f.size for f in files) / 1e6,
        len(todo),
    )
    duplicates: list[dict[str, Any]] = []
    if config.job.dedupe and todo:
        todo, duplicates = _dedupe(sc, todo, config)

    # transform + load, into a hidden staging directory
    staging = sibling(output_uri, "staging")
    new_lines, n_partitions = _transform_and_save(sc, todo, config, staging, fs)
    lines = kept + duplicates + new_lines
    counts = summarize(lines)
    wall = time.monotonic() - started
    extra = {
        "input": input_uri,
        "output": output_uri,
        "master": sc.master,
        "partitions": n_partitions,
        "processed_this_run": len(todo),
        "config_key": config_key(config),
    }
    fs.write_bytes(f"{staging}/{MANIFEST_FILE}", manifest_bytes(lines))
    fs.write_bytes(f"{staging}/{STATS_FILE}", stats_bytes(counts, config.to_dict(), wall, extra))
    drop_checksum_files(staging)

    # commit: OUTPUT appears (or is replaced) whole
    _commit(fs, staging, output_uri, mode, run_tag=f"{int(time.time())}")
    failures = [line for line in lines if line["status"] == "error"]
    rate = counts["failed"] / counts["inputs"] if counts["inputs"] else 0.0
    return JobResult(output_uri, counts, wall, failures, rate > config.job.max_error_rate)
