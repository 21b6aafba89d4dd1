"""Before a cluster job: can the executors' Python run fmaprep at all?

Without a shipped environment, a cluster job fails deep inside a worker log with a
ModuleNotFoundError traceback for every task. :func:`check_workers` runs one tiny probe task
per core first: it imports what the configured pipeline needs and resamples a short tone (so
the native pieces load: libsndfile, soxr, numba for resampy). Failures become one clear line.

The probe is a closure, so cloudpickle ships it by value: it needs nothing from fmaprep to be
unpickled on the worker, which is the point.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fmaprep.config import PipelineConfig

log = logging.getLogger(__name__)

# the set-up moved from the README to the docs site: name the page and its section
DOCS_PAGE = "docs/cluster.md"
DOCS_SECTION = "The environment archive"
SHIP_HINT = (
    "ship the environment: `fmaprep package-env env.tar.gz`, then spark-submit "
    "--archives env.tar.gz#environment "
    "--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python "
    f'(see {DOCS_PAGE}, "{DOCS_SECTION}")'
)

_DECODER_MODULES = {
    "soundfile": ("soundfile",),
    "ffmpeg": ("imageio_ffmpeg",),
    "pydub": ("pydub", "imageio_ffmpeg"),
}


class WorkerEnvironmentError(Exception):
    """The executors cannot run the pipeline; the message is one line saying what to do."""


def required_modules(cfg: PipelineConfig) -> list[str]:
    """Top-level modules the pipeline imports on a worker for ``cfg``."""
    # requests: WebHDFS and the retrying reader; boto3: S3 inputs and outputs; pyarrow: parquet
    modules = ["fmaprep", "numpy", "scipy", "requests", "boto3", "pyarrow"]
    modules += _DECODER_MODULES.get(cfg.decoder, ())
    modules.append(cfg.resampler)  # soxr | resampy: the module has the resampler's name
    return list(dict.fromkeys(modules))


def probe_results(
    spark_context: Any,
    modules: list[str],
    resampler: str,
    tasks: int,
    marks: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run the probe in ``tasks`` tasks; one dict per task (python, host, missing modules,
    errors, and which of ``marks`` (label -> local path) the task cannot see)."""
    paths = dict(marks or {})

    def probe(_: Any) -> dict[str, Any]:
        import importlib
        import os
        import socket
        import sys

        missing: dict[str, str] = {}
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # ImportError, or a native library that fails to load
                missing[name] = f"{type(exc).__name__}: {exc}"
        failed = ""
        if not missing:
            try:
                np = importlib.import_module("numpy")
                rs = importlib.import_module("fmaprep.audio.resample")
                tone = np.sin(np.arange(4410, dtype=np.float32) * 0.1).astype(np.float32)
                out = rs.get_resampler(resampler)(tone, 44100, 8000)
                if abs(len(out) - 800) > 1:
                    failed = f"{resampler} returned {len(out)} samples, not 800"
            except Exception as exc:
                failed = f"{resampler} failed: {type(exc).__name__}: {exc}"
        return {
            "python": sys.executable,
            "version": ".".join(map(str, sys.version_info[:3])),
            "host": socket.gethostname(),
            "missing": missing,
            "failed": failed,
            "unseen": sorted(label for label, path in paths.items() if not os.path.exists(path)),
        }

    results: list[dict[str, Any]] = (
        spark_context.parallelize(range(tasks), tasks).map(probe).collect()
    )
    return results


def last_exception_line(text: str) -> str:
    """The last ``SomethingError: message`` line of a (Java or Python) stack trace."""
    lines: list[str] = re.findall(r"^(?:[\w.$]+(?:Error|Exception)): .*$", text, flags=re.MULTILINE)
    if lines:
        return lines[-1].strip()
    return (text.strip().splitlines() or ["unknown error"])[0]


def explain(results: list[dict[str, Any]], given: Mapping[str, str] | None = None) -> str | None:
    """One line describing what the probe found wrong, or None when every worker is fine.
    ``given``: label -> the local path as the user gave it, for the marks the probe checked."""
    missing: dict[str, str] = {}
    pythons: set[str] = set()
    for result in results:
        if result["missing"]:
            missing.update(result["missing"])
            pythons.add(f"{result['python']} ({result['version']})")
    if missing:
        names = ", ".join(sorted(missing))
        first = next(iter(missing.values())).splitlines()[0]
        return (
            f"workers cannot import {names} [{first}; worker python: {', '.join(sorted(pythons))}]:"
            f" {SHIP_HINT}"
        )
    for result in results:
        if result["failed"]:
            return f"workers can import fmaprep but {result['failed']} (python {result['python']})"
    unseen = sorted({label for result in results for label in result.get("unseen", ())})
    if unseen:
        hosts = sorted({r.get("host", "?") for r in results if r.get("unseen")})
        where = "; ".join(f"{label} {(given or {}).get(label, '')}".strip() for label in unseen)
        return (
            f"{where}: on the driver's disk only, the executors on {', '.join(hosts)} cannot see "
            f"it; with a cluster master use hdfs:// or s3:// (or a filesystem every node mounts)"
        )
    return None


def check_workers(
    spark_context: Any,
    cfg: PipelineConfig,
    marks: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Raise :class:`WorkerEnvironmentError` unless every probe task can run the pipeline and
    see each of ``marks`` (label -> (the path as given, a path the executors must see))."""
    probes = {label: mark for label, (_, mark) in (marks or {}).items()}
    given = {label: path for label, (path, _) in (marks or {}).items()}
    tasks = max(1, int(spark_context.defaultParallelism))
    modules = required_modules(cfg)
    log.info("checking the workers' Python (%d probe tasks: %s)", tasks, ", ".join(modules))
    try:
        results = probe_results(spark_context, modules, cfg.resampler, tasks, probes)
    except Exception as exc:  # Py4JJavaError: the worker python did not even start
        detail = last_exception_line(str(exc))
        raise WorkerEnvironmentError(
            f"workers cannot run Python [{detail}]: check spark.executorEnv.PYSPARK_PYTHON "
            f"and that the workers have Python 3.11 where the archive's bin/python links; "
            f"{SHIP_HINT}"
        ) from None
    problem = explain(results, given)
    if problem:
        raise WorkerEnvironmentError(problem)
    log.info("workers OK: %s", ", ".join(sorted({r["python"] for r in results})))
