"""The Spark glue: map :func:`fmaprep.pipeline.process_file` over packed partitions of inputs and
save the records with ``saveAsPickleFile`` (``save_records``) or as parquet through the DataFrame
writer (``save_records_parquet``); ``saver_for(config.job.format)`` picks one. Manifest lines come
back through an accumulator, so every input is read and decoded once."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from pyspark.accumulators import AccumulatorParam

from fmaprep.config import PipelineConfig
from fmaprep.errors import TrackError
from fmaprep.pipeline import METADATA_KEYS, InputFile, local_path, process_bytes, process_file
from fmaprep.seqfile import PickleFileWriter
from fmaprep.spark import is_local_master
from fmaprep.storage import is_local
from fmaprep.storage import local_path as local_dir

ManifestLine = dict[str, Any]


class _ListParam(AccumulatorParam[list[ManifestLine]]):
    def zero(self, value: list[ManifestLine]) -> list[ManifestLine]:
        return []

    def addInPlace(  # noqa: N802 (PySpark's name)
        self, value1: list[ManifestLine], value2: list[ManifestLine]
    ) -> list[ManifestLine]:
        value1.extend(value2)
        return value1


def _records(
    inputs: Iterable[tuple[InputFile, bytes | None]], cfg: PipelineConfig, manifest: Any
) -> Iterator[dict[str, Any]]:
    """The pipeline over one partition's inputs: records out, manifest lines to ``manifest``."""
    for item, data in inputs:
        if data is None:
            record, line = process_file(item, cfg)
        else:
            record, line = process_bytes(item, data, cfg)
        manifest.add([line])
        if record is not None:
            yield record


def _process(
    spark_context: Any, bins: list[list[InputFile]], cfg: PipelineConfig
) -> tuple[Any, Any, Callable[[], tuple[int, int]]]:
    """The inputs RDD (lazy), the manifest accumulator the pipeline fills, and a progress poll."""
    manifest = spark_context.accumulator([], _ListParam())

    def poll() -> tuple[int, int]:
        lines: list[ManifestLine] = list(manifest.value)
        return len(lines), sum(1 for line in lines if line["status"] != "ok")

    return read_inputs(spark_context, bins), manifest, poll


def _run_save(
    save: Callable[[], None],
    poll: Callable[[], tuple[int, int]],
    run_while_saving: Callable[[Callable[[], tuple[int, int]]], Any] | None,
) -> None:
    if run_while_saving is None:
        save()
    else:
        with run_while_saving(poll):
            save()


def save_records(
    spark_context: Any,
    bins: list[list[InputFile]],
    cfg: PipelineConfig,
    output_uri: str,
    run_while_saving: Callable[[Callable[[], tuple[int, int]]], Any] | None = None,
) -> list[ManifestLine]:
    """Process every input of ``bins`` (one bin = one Spark partition) and write the records as
    un-coalesced pickle partitions at ``output_uri``. Returns one manifest line per input.

    ``run_while_saving`` receives a poll function (files done, failed) and returns a context
    manager that is active while Spark works (used for console progress).
    """
    inputs, manifest, poll = _process(spark_context, bins, cfg)
    if is_local_master(spark_context.master) and is_local(output_uri):
        save = partial(_save_direct, inputs, cfg, manifest, local_dir(output_uri))
    else:
        records = inputs.mapPartitions(lambda part: _records(part, cfg, manifest))
        # batchSize=1: one record per pickle, so a long track never makes an oversized batch
        save = partial(records.saveAsPickleFile, output_uri, batchSize=1)
    _run_save(save, poll, run_while_saving)
    lines: list[ManifestLine] = list(manifest.value)
    return lines


def _save_direct(inputs: Any, cfg: PipelineConfig, manifest: Any, directory: str) -> None:
    """``saveAsPickleFile`` done by the Python workers themselves, for a local job writing to a
    local directory: the same files (see :mod:`fmaprep.seqfile`), without the records crossing
    into the JVM. Each task writes ``_temporary/<part>.<attempt>`` and renames it into place
    when complete, so a retried task replaces, never mixes, and readers see whole parts."""
    scratch = os.path.join(directory, "_temporary")
    os.makedirs(scratch, exist_ok=True)

    def write_partition(
        index: int, part: Iterable[tuple[InputFile, bytes | None]]
    ) -> Iterator[int]:
        name = f"part-{index:05d}"
        tmp = os.path.join(scratch, f"{name}.{os.getpid()}.{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            writer = PickleFileWriter(f)
            for record in _records(part, cfg, manifest):
                writer.append(record)
            writer.close()
        os.replace(tmp, os.path.join(directory, name))
        yield index

    inputs.mapPartitionsWithIndex(write_partition).count()
    shutil.rmtree(scratch, ignore_errors=True)
    with open(os.path.join(directory, "_SUCCESS"), "wb"):
        pass


def read_inputs(spark_context: Any, bins: list[list[InputFile]]) -> Any:
    """An RDD of (input, bytes or None), one partition per bin.

    Local files are opened by the tasks themselves (bytes None: decoders stream from the
    path). Anything else (hdfs://, s3a://, s3:// with EMRFS) is read by the executors' JVMs
    through Hadoop's FileSystem with ``binaryFiles``, so the tasks need no filesystem client
    and no directory shared with the driver; its byte-sized splits follow the same total.
    """
    items = [item for b in bins for item in b]
    if all(is_local_source(item.source) for item in items):
        return spark_context.parallelize(bins, len(bins)).flatMap(lambda b: [(i, None) for i in b])
    by_source = spark_context.broadcast({item.source: item for item in items})
    paths = ",".join(_escape_hadoop_path(item.source) for item in items)

    def attach(pair: tuple[str, bytes]) -> tuple[InputFile, bytes]:
        source, data = pair
        item = by_source.value.get(source) or InputFile(source, len(data))
        return item, data

    return spark_context.binaryFiles(paths, minPartitions=len(bins)).map(attach)


def is_local_source(source: str) -> bool:
    return "://" not in source or source.startswith("file:")


def _escape_hadoop_path(uri: str) -> str:
    """Hadoop splits input paths on commas and expands globs: escape both in a real name."""
    return "".join("\\" + c if c in ",{}[]*?\\" else c for c in uri)


def hash_inputs(spark_context: Any, bins: list[list[InputFile]]) -> dict[str, str]:
    """sha1 of every input's bytes, computed where the files are read (source -> hex digest)."""

    def digest(pair: tuple[InputFile, bytes | None]) -> tuple[str, str]:
        item, data = pair
        if data is not None:
            return item.source, hashlib.sha1(data).hexdigest()
        try:
            return item.source, file_sha1(local_path(item.source))
        except (OSError, TrackError):
            return item.source, f"unreadable:{item.source}"  # never equal to another file

    pairs = read_inputs(spark_context, bins).map(digest).collect()
    return dict(pairs)


def file_sha1(path: str, block: int = 1 << 20) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


# Parquet: one row per track. Fixed columns, so every part file has the same schema; metadata
# a record lacks is null (the reader leaves null columns out of the record dict again).
PARQUET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("track_id", "string"),
    ("source", "string"),
    ("sample_rate", "int"),
    ("mu", "int"),
    ("source_sample_rate", "int"),
    ("gain", "double"),
    *((key, "string") for key in METADATA_KEYS),
    ("sha1", "string"),  # with --dedupe
    ("codes", "binary"),
)
PARQUET_ROW_GROUP_BYTES = 16 * 1024 * 1024  # readers stream one row group at a time


def record_to_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """A record dict as a parquet row (``PARQUET_COLUMNS`` order; ``codes`` as bytes)."""
    unknown = set(record) - {name for name, _ in PARQUET_COLUMNS}
    if unknown:
        raise ValueError(f"record fields without a parquet column: {sorted(unknown)}")
    return tuple(
        record["codes"].tobytes() if name == "codes" else record.get(name)
        for name, _ in PARQUET_COLUMNS
    )


def save_records_parquet(
    spark_context: Any,
    bins: list[list[InputFile]],
    cfg: PipelineConfig,
    output_uri: str,
    run_while_saving: Callable[[Callable[[], tuple[int, int]]], Any] | None = None,
) -> list[ManifestLine]:
    """Like :func:`save_records`, but written by Spark's DataFrame writer as parquet (one part
    file per partition, one row per track, ``codes`` as binary), so Spark's output committers
    apply on HDFS and S3."""
    from pyspark.sql import SparkSession

    inputs, manifest, poll = _process(spark_context, bins, cfg)
    records = inputs.mapPartitions(lambda part: _records(part, cfg, manifest))
    session = SparkSession.getActiveSession() or SparkSession(spark_context)
    schema = ", ".join(
        f"{name} {kind}" + (" not null" if name in ("track_id", "source", "codes") else "")
        for name, kind in PARQUET_COLUMNS
    )
    frame = session.createDataFrame(records.map(record_to_row), schema)
    writer = frame.write.option("parquet.block.size", PARQUET_ROW_GROUP_BYTES)
    _run_save(lambda: writer.parquet(output_uri), poll, run_while_saving)
    lines: list[ManifestLine] = list(manifest.value)
    return lines


SAVERS = {"pickle": save_records, "parquet": save_records_parquet}


def saver_for(output_format: str) -> Callable[..., list[ManifestLine]]:
    """The save function for ``config.job.format``."""
    try:
        return SAVERS[output_format]
    except KeyError:
        raise ValueError(f"unknown output format {output_format!r}") from None
