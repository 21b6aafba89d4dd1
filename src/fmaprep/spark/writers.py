"""The Spark glue: one task per bin of inputs; each task runs the pipeline over its files and
writes its part (pickle SequenceFile or parquet) straight to OUTPUT under a name no other task or
attempt uses, then its manifest lines next to it: the task's commit record (README, "Commit
protocol"). Nothing goes through a Hadoop committer, so nothing is renamed or copied on S3.

The manifest lines come back to the driver as the tasks' results (one result per partition: a
retried or speculative attempt is never counted twice); an accumulator only feeds the progress
line.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.accumulators import AccumulatorParam

from fmaprep.config import PipelineConfig
from fmaprep.formats.commit import MANIFEST_DIR
from fmaprep.formats.manifest import shard_bytes
from fmaprep.formats.parquet import ParquetPartWriter
from fmaprep.formats.sequencefile import PickleFileWriter
from fmaprep.isolation import run_files
from fmaprep.model import InputFile
from fmaprep.pipeline import failed_line
from fmaprep.spark.inputs import local_copies
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.faults import EnvironmentFaultError, describe

ManifestLine = dict[str, Any]
FORMATS = ("pickle", "parquet")


@dataclass(frozen=True)
class TaskPlan:
    """Everything a task needs, small enough to ship with every task."""

    output: str  # OUTPUT URI, no trailing slash
    run: str  # this run's generation id
    format: str
    pipeline: PipelineConfig
    stores: StoreSettings
    config_key: str

    def part_name(self, index: int, attempt: str) -> str:
        suffix = ".parquet" if self.format == "parquet" else ""
        return f"part-{index:05d}-{self.run}-{attempt}{suffix}"


@dataclass(frozen=True)
class TaskResult:
    index: int
    part: str
    part_bytes: int
    records: int
    shard: str
    shard_bytes: int
    lines: list[ManifestLine]
    fault: str | None = None  # the environment failed this task (full disk, refused store)


class _CountParam(AccumulatorParam[tuple[int, int]]):
    def zero(self, value: tuple[int, int]) -> tuple[int, int]:
        return (0, 0)

    def addInPlace(  # noqa: N802 (PySpark's name)
        self, value1: tuple[int, int], value2: tuple[int, int]
    ) -> tuple[int, int]:
        return (value1[0] + value2[0], value1[1] + value2[1])


def _attempt() -> str:
    """This task attempt's tag: Spark's attempt number plus a random suffix (a resubmitted stage
    reuses attempt numbers)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    number = ctx.attemptNumber() if ctx is not None else 0
    return f"a{number}{secrets.token_hex(3)}"


def write_part(
    plan: TaskPlan, index: int, items: Iterable[InputFile], progress: Any = None
) -> TaskResult:
    """Run the pipeline over one bin and publish its part, then its manifest shard. A fault of
    the environment (:func:`fmaprep.storage.faults.describe`) is returned as the result's
    ``fault``, not raised: Spark would retry the task on the same full disk or refused store,
    and the driver stops the job at the first one instead."""
    name = plan.part_name(index, _attempt())
    try:
        return _write_part(plan, index, name, items, progress)
    except Exception as exc:
        fault = describe(exc, f"{plan.output}/{name}")
        if fault is None:
            raise  # not the environment's: Spark's retries and its report
        return TaskResult(index, name, 0, 0, "", 0, [], fault=fault)


def _write_part(
    plan: TaskPlan, index: int, name: str, items: Iterable[InputFile], progress: Any
) -> TaskResult:
    store = open_store(plan.output, plan.stores)
    lines: list[ManifestLine] = []
    records = 0
    code_counts = np.zeros(256, np.int64)  # the part's code histogram, for report/inspect
    with run_files(plan.pipeline) as files, store.open_write(f"{plan.output}/{name}") as out:
        writer = ParquetPartWriter(out) if plan.format == "parquet" else PickleFileWriter(out)
        for item, path, error in local_copies(
            items, plan.stores, timeout_s=plan.pipeline.timeout_s
        ):
            if error is not None:
                record, line = None, failed_line(item, error)
            else:
                record, line = files.process(item, path)
            if record is not None:
                writer.append(record)
                records += 1
                code_counts += np.bincount(record["codes"], minlength=256)[:256]
                line["part"] = name  # which part holds the record (resume reads this)
            lines.append(line)
            if progress is not None:
                progress.add((1, 0 if line["status"] == "ok" else 1))
        writer.close()
        out.commit()
        part_bytes = out.size
    task = {
        "part": name,
        "bytes": part_bytes,
        "records": records,
        "config_key": plan.config_key,
        "code_counts": code_counts.tolist(),
    }
    shard = f"{MANIFEST_DIR}/{name}.jsonl"
    data = shard_bytes(task, lines)
    store.write_bytes(f"{plan.output}/{shard}", data)
    return TaskResult(index, name, part_bytes, records, shard, len(data), lines)


class _ListParam(AccumulatorParam[list[str]]):
    def zero(self, value: list[str]) -> list[str]:
        return []

    def addInPlace(self, value1: list[str], value2: list[str]) -> list[str]:  # noqa: N802
        return value1 + value2


def run_tasks(
    spark_context: Any,
    bins: list[list[InputFile]],
    plan: TaskPlan,
    run_while_saving: Callable[[Callable[[], tuple[int, int]]], Any] | None = None,
) -> list[TaskResult]:
    """One Spark task per bin; returns each partition's result (its successful attempt's).
    The first task that meets a fault of the environment cancels the job (EnvironmentFaultError)."""
    if plan.format not in FORMATS:
        raise ValueError(f"unknown output format {plan.format!r}")
    progress = spark_context.accumulator((0, 0), _CountParam())
    faults = spark_context.accumulator([], _ListParam())

    def task(index: int, part: Iterable[list[InputFile]]) -> Iterator[TaskResult]:
        for items in part:  # exactly one bin per partition
            result = write_part(plan, index, items, progress)
            if result.fault:
                faults.add([result.fault])
            yield result

    rdd = spark_context.parallelize(bins, len(bins)).mapPartitionsWithIndex(task)
    stop = threading.Event()

    def watch() -> None:  # tasks report faults as results: cancel the rest at the first
        while not stop.wait(0.2):
            if faults.value:
                spark_context.cancelAllJobs()
                return

    watcher = threading.Thread(target=watch, name="fmaprep-faults", daemon=True)
    watcher.start()
    try:
        with (
            run_while_saving(lambda: tuple(progress.value))
            if run_while_saving
            else contextlib.nullcontext()
        ):
            results = list(rdd.collect())
    except Exception as exc:
        if faults.value:
            raise EnvironmentFaultError(faults.value[0]) from exc
        raise
    finally:
        stop.set()
        watcher.join()
    failed = [r.fault for r in results if r.fault]
    if failed:
        raise EnvironmentFaultError(failed[0])
    return results
