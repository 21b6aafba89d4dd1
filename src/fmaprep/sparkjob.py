"""The Spark glue: map :func:`fmaprep.pipeline.process_file` over packed partitions of inputs and
save the records with ``saveAsPickleFile``. Manifest lines come back through an accumulator, so
every input is read and decoded once."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyspark.accumulators import AccumulatorParam

from fmaprep.config import PipelineConfig
from fmaprep.errors import TrackError
from fmaprep.pipeline import InputFile, local_path, process_file

ManifestLine = dict[str, Any]


class _ListParam(AccumulatorParam[list[ManifestLine]]):
    def zero(self, value: list[ManifestLine]) -> list[ManifestLine]:
        return []

    def addInPlace(  # noqa: N802 (PySpark's name)
        self, value1: list[ManifestLine], value2: list[ManifestLine]
    ) -> list[ManifestLine]:
        value1.extend(value2)
        return value1


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
    # batchSize=1: one record per pickle, so a long track never makes an oversized batch
    if run_while_saving is None:
        records.saveAsPickleFile(output_uri, batchSize=1)
    else:
        with run_while_saving(poll):
            records.saveAsPickleFile(output_uri, batchSize=1)
    lines: list[ManifestLine] = list(manifest.value)
    return lines


def hash_inputs(spark_context: Any, bins: list[list[InputFile]]) -> dict[str, str]:
    """sha1 of every input's bytes, computed where the files are read (source -> hex digest)."""

    def digest_partition(chunks: Iterable[list[InputFile]]) -> Iterator[tuple[str, str]]:
        for item in itertools.chain.from_iterable(chunks):
            try:
                yield item.source, file_sha1(local_path(item.source))
            except (OSError, TrackError):
                yield item.source, f"unreadable:{item.source}"  # never equal to another file

    pairs = spark_context.parallelize(bins, len(bins)).mapPartitions(digest_partition).collect()
    return dict(pairs)


def file_sha1(path: str, block: int = 1 << 20) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
