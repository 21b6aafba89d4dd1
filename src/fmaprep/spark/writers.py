"""The Spark glue: map :func:`fmaprep.pipeline.process_file` over packed partitions of inputs and
save the records with ``saveAsPickleFile`` (``save_records``) or as parquet through the DataFrame
writer (``save_records_parquet``); ``saver_for(config.job.format)`` picks one. Manifest lines come
back through an accumulator, so every input is read and decoded once."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from pyspark.accumulators import AccumulatorParam

from fmaprep.config import PipelineConfig
from fmaprep.formats.parquet import PARQUET_COLUMNS, PARQUET_ROW_GROUP_BYTES, record_to_row
from fmaprep.formats.sequencefile import PickleFileWriter
from fmaprep.model import InputFile
from fmaprep.pipeline import process_bytes, process_file
from fmaprep.spark.inputs import read_inputs
from fmaprep.spark.session import is_local_master
from fmaprep.storage.uris import is_local, local_path

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
        save = partial(_save_direct, inputs, cfg, manifest, local_path(output_uri))
    else:
        records = inputs.mapPartitions(lambda part: _records(part, cfg, manifest))
        # batchSize=1: one record per pickle, so a long track never makes an oversized batch
        save = partial(records.saveAsPickleFile, output_uri, batchSize=1)
    _run_save(save, poll, run_while_saving)
    lines: list[ManifestLine] = list(manifest.value)
    return lines


def _save_direct(inputs: Any, cfg: PipelineConfig, manifest: Any, directory: str) -> None:
    """``saveAsPickleFile`` done by the Python workers themselves, for a local job writing to a
    local directory: the same files (:mod:`fmaprep.formats.sequencefile`), without the
    records crossing into the JVM. Each task writes ``_temporary/<part>.<attempt>`` and renames
    it into place when complete, so a retried task replaces, never mixes, and readers see whole
    parts."""
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
