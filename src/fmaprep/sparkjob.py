"""The Spark glue: map :func:`fmaprep.pipeline.process_file` over packed partitions of inputs and
save the records with ``saveAsPickleFile`` (``save_records``) or as parquet through the DataFrame
writer (``save_records_parquet``); ``saver_for(config.job.format)`` picks one. Manifest lines come
back through an accumulator, so every input is read and decoded once."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyspark.accumulators import AccumulatorParam

from fmaprep.config import PipelineConfig
from fmaprep.pipeline import METADATA_KEYS, InputFile, process_file

ManifestLine = dict[str, Any]


class _ListParam(AccumulatorParam[list[ManifestLine]]):
    def zero(self, value: list[ManifestLine]) -> list[ManifestLine]:
        return []

    def addInPlace(  # noqa: N802 (PySpark's name)
        self, value1: list[ManifestLine], value2: list[ManifestLine]
    ) -> list[ManifestLine]:
        value1.extend(value2)
        return value1


def _process(
    spark_context: Any, bins: list[list[InputFile]], cfg: PipelineConfig
) -> tuple[Any, Any, Callable[[], tuple[int, int]]]:
    """The records RDD (lazy), the manifest accumulator it fills, and a progress poll."""
    manifest = spark_context.accumulator([], _ListParam())

    def run_partition(chunks: Iterable[list[InputFile]]) -> Iterator[dict[str, Any]]:
        for item in itertools.chain.from_iterable(chunks):
            record, line = process_file(item, cfg)
            manifest.add([line])
            if record is not None:
                yield record

    def poll() -> tuple[int, int]:
        lines: list[ManifestLine] = list(manifest.value)
        return len(lines), sum(1 for line in lines if line["status"] != "ok")

    records = spark_context.parallelize(bins, len(bins)).mapPartitions(run_partition)
    return records, manifest, poll


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
    records, manifest, poll = _process(spark_context, bins, cfg)
    # batchSize=1: one record per pickle, so a long track never makes an oversized batch
    _run_save(lambda: records.saveAsPickleFile(output_uri, batchSize=1), poll, run_while_saving)
    lines: list[ManifestLine] = list(manifest.value)
    return lines


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

    records, manifest, poll = _process(spark_context, bins, cfg)
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
