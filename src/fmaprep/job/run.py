"""The preprocess job: extract (list inputs), transform and load (Spark), then commit the output.

``run_preprocess`` is what both ``fmaprep preprocess`` and ``jobs/preprocess.py`` call. Output is
built in a hidden staging sibling and renamed into place at the end, so OUTPUT is either absent,
the previous complete output, or the new complete output: never half-written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from fmaprep.config import Config
from fmaprep.formats.manifest import (
    MANIFEST_FILE,
    STATS_FILE,
    manifest_bytes,
    stats_bytes,
    summarize,
)
from fmaprep.job.commit import check_output, commit_output, config_key, resumable_lines
from fmaprep.job.progress import Progress
from fmaprep.job.summary import JobResult
from fmaprep.model import InputFile
from fmaprep.spark.partition import choose_partition_count, pack_by_bytes
from fmaprep.spark.session import build_session, is_local_master, stop_session
from fmaprep.storage.hadoop_fs import HadoopFS, drop_checksum_files
from fmaprep.storage.listing import list_inputs
from fmaprep.storage.uris import StorageError, resolve_uri, sibling

log = logging.getLogger(__name__)


def _dedupe(
    sc: Any, files: list[InputFile], config: Config
) -> tuple[list[InputFile], list[dict[str, Any]]]:
    """Hash every input's bytes (in Spark); keep the first source of each content, in name
    order, and return manifest lines for the rest."""
    from fmaprep.spark.inputs import hash_inputs

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
    from fmaprep.spark.writers import saver_for

    bins = pack_by_bytes(files, _partition_count(sc, files, config))
    log.info("processing %d files in %d partitions on %s", len(files), len(bins), sc.master)
    save = saver_for(config.job.format)
    lines = save(sc, bins, config.pipeline, staging, lambda poll: Progress(len(files), poll))
    return lines, len(bins)


def storage_spark_conf(uris: list[str], config: Config) -> dict[str, str]:
    """Spark settings the URIs need (S3A endpoint, jars and credentials; the HDFS NameNode).
    Secrets come from the environment and are never logged."""
    from fmaprep.storage.s3_settings import is_s3_uri, load_s3_settings, redact, spark_storage_conf

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
            from fmaprep.spark.workerenv import check_workers

            check_workers(session.sparkContext, config.pipeline)
        return _run(session.sparkContext, input_uri, output_uri, config, started)
    finally:
        if own_session:
            stop_session(session)


def _run(sc: Any, input_uri: str, output_uri: str, config: Config, started: float) -> JobResult:
    fs = HadoopFS(sc, output_uri)
    mode = config.job.mode
    exists = check_output(fs, output_uri, mode)

    # extract: what to process, what an earlier run already did, what is a duplicate
    files = list_inputs(sc, input_uri, config.job.extensions)
    if not files:
        raise StorageError(f"no audio files ({', '.join(config.job.extensions)}) under {input_uri}")
    kept = resumable_lines(fs, output_uri, config, files) if exists and mode == "resume" else []
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
    commit_output(fs, staging, output_uri, mode, run_tag=f"{int(time.time())}")
    failures = [line for line in lines if line["status"] == "error"]
    rate = counts["failed"] / counts["inputs"] if counts["inputs"] else 0.0
    return JobResult(output_uri, counts, wall, failures, rate > config.job.max_error_rate)
