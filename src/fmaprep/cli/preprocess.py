"""fmaprep preprocess INPUT OUTPUT: the Spark job."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import traceback
from typing import get_args

from fmaprep.config import (
    AUDIO_EXTENSIONS,
    ConfigError,
    DecoderName,
    IsolationName,
    ResamplerName,
    load_config,
)
from fmaprep.spark.workerenv import WorkerEnvironmentError
from fmaprep.storage.s3_settings import StorageConfError
from fmaprep.storage.uris import StorageError, StoreError

NAME = "preprocess"
HELP = (
    "decode, resample, normalize and mu-law encode audio files into pickle (or parquet) partitions"
)
EXAMPLES = """\
  fmaprep preprocess build/demo/corpus build/demo/out
  fmaprep preprocess ~/fma_small out/ --master 'local[2]' --mode overwrite
  fmaprep preprocess 'data/**/*.mp3' out/ --channel mix --resampler resampy
  fmaprep preprocess data/ out/ --config conf/pipeline.toml --decoder ffmpeg
  fmaprep preprocess data/ out-pq/ --format parquet
  python -c "import fmaprep; print(sum(1 for _ in fmaprep.read_records('out')))"

exit status: 0 the output is committed and whole; 1 the run failed (a fault of the
environment: a full disk, a refused or unreachable store; or more failed inputs than
--max-error-rate); 2 refused before any work (bad arguments or config, an OUTPUT that is not
fmaprep's, overlaps INPUT or is being written by another run); 130 interrupted (Ctrl-C). A
failure's traceback goes to a log file under $TMPDIR/fmaprep-logs/, named in its line.
"""

log = logging.getLogger(__name__)


def _number(text: str) -> int | float | str:
    """A numeric flag's value as TOML would read it (an integer, else a number), else the text:
    the config's own check then names the problem in one line (``[pipeline] sample_rate must be
    an integer, got 8000.5``), the same line a config file gets, instead of argparse's usage."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="directory (searched recursively), glob, or URI")
    p.add_argument("output", metavar="OUTPUT", help="output directory or URI")
    p.add_argument(
        "--config",
        metavar="TOML",
        help="pipeline config file ([pipeline], [job]); flags override it",
    )
    p.add_argument("--master", help="Spark master (default local[*])")
    p.add_argument(
        "--decoder", choices=sorted(get_args(DecoderName)), help="audio decoder (default soundfile)"
    )
    p.add_argument(
        "--resampler",
        choices=sorted(get_args(ResamplerName)),
        help="resampler (default soxr, high quality)",
    )
    p.add_argument("--sample-rate", type=_number, help="output sample rate in Hz (default 8000)")
    p.add_argument(
        "--channel", choices=["left", "right", "mix"], help="channel to keep (default left)"
    )
    p.add_argument(
        "--normalize", choices=["peak", "none"], help="peak normalization (default peak)"
    )
    p.add_argument("--mu", type=_number, help="mu-law mu; codes are 0..mu (default 255)")
    p.add_argument(
        "--isolation",
        choices=sorted(get_args(IsolationName)),
        help="where files are decoded: a decode process per task that is killed when a file "
        "hangs or crashes (default process), or in the Spark Python worker itself (none)",
    )
    p.add_argument(
        "--partitions", type=_number, help="number of partitions (default: sized by input bytes)"
    )
    p.add_argument(
        "--format",
        choices=["pickle", "parquet"],
        help="output format: pickle partitions (default) or parquet, one row per track",
    )
    p.add_argument(
        "--mode",
        choices=["error", "overwrite", "resume"],
        help="if OUTPUT exists: fail (default), replace it atomically, or add only missing inputs",
    )
    p.add_argument(
        "--max-error-rate",
        type=_number,
        metavar="FRACTION",
        help="exit non-zero when more than this share of inputs fail (default 0.05)",
    )
    p.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="S3 API endpoint for s3a:// (default: $FMAPREP_S3_ENDPOINT, conf/storage.toml, AWS)",
    )
    p.add_argument(
        "--dedupe",
        action="store_true",
        default=None,
        help="process byte-identical files once; the others get a 'duplicate' manifest line",
    )
    p.add_argument(
        "--extensions",
        help=f"comma-separated audio extensions (default {','.join(AUDIO_EXTENSIONS)})",
    )
    p.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark setting (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from fmaprep.job.interrupted import INTERRUPTED
    from fmaprep.job.run import run_preprocess
    from fmaprep.job.summary import print_summary

    try:
        spark_conf = dict(kv.split("=", 1) for kv in args.spark_conf)
    except ValueError:
        print("fmaprep: --spark-conf takes KEY=VALUE", file=sys.stderr)
        return 2
    extensions = (
        tuple(f".{e.strip().lstrip('.').lower()}" for e in args.extensions.split(","))
        if args.extensions is not None  # "" is a mistake to report, not the default
        else None
    )
    try:
        config = load_config(
            args.config,
            pipeline_overrides={
                "sample_rate": args.sample_rate,
                "channel": args.channel,
                "normalize": args.normalize,
                "mu": args.mu,
                "decoder": args.decoder,
                "resampler": args.resampler,
                "isolation": args.isolation,
            },
            job_overrides={
                "master": args.master,
                "partitions": args.partitions,
                "format": args.format,
                "mode": args.mode,
                "max_error_rate": args.max_error_rate,
                "extensions": extensions,
                "spark_conf": spark_conf or None,
                "dedupe": args.dedupe,
                "s3_endpoint": args.s3_endpoint,
            },
        )
        result = run_preprocess(args.input, args.output, config)
    except StoreError as exc:  # a store that failed: the environment's fault, exit 1 (below)
        return _failed(args, exc)
    except (ConfigError, StorageError, StorageConfError, WorkerEnvironmentError) as exc:
        if INTERRUPTED.is_set():
            return _interrupted(args)
        _keep_traceback(args.log_file)
        for line in str(exc).splitlines():  # a config names each of its problems on a line
            print(f"fmaprep: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(args)
    except Exception as exc:  # the one boundary: a line here, the traceback in the log file
        return _failed(args, exc)
    print_summary(result, sys.stdout)
    return 1 if result.error_rate_exceeded else 0


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    from fmaprep.job.interrupted import INTERRUPTED
    from fmaprep.storage.faults import EnvironmentFaultError, describe

    if INTERRUPTED.is_set():
        return _interrupted(args)
    kept = _keep_traceback(args.log_file)
    what = describe(exc) if not isinstance(exc, EnvironmentFaultError) else str(exc)
    if what is None:
        what = f"the job failed: {type(exc).__name__}: {_last_line(exc)}"
    print(
        f"fmaprep: {what}; nothing was committed (OUTPUT keeps its last commit and this "
        f"run's finished tasks). Once that is fixed, {_resume(args)} continues{kept}",
        file=sys.stderr,
    )
    return 1


def _resume(args: argparse.Namespace) -> str:
    return f"`fmaprep preprocess {shlex.quote(args.input)} {shlex.quote(args.output)} " \
        "--mode resume`"  # fmt: skip


def _interrupted(args: argparse.Namespace) -> int:
    """Ctrl-C: one line, and the conventional status of a SIGINT (128 + 2)."""
    _keep_traceback(args.log_file)
    print(f"fmaprep: interrupted; nothing was committed (finished tasks are kept): "
          f"{_resume(args)} continues", file=sys.stderr)  # fmt: skip
    return 130


def _keep_traceback(log_file: str | None) -> str:
    """Append the traceback being handled to the log file; `` (traceback: PATH)`` for the line,
    or why there is none (the log may sit on the disk that is full)."""
    if log_file is None:
        return ""
    from fmaprep.redaction import redact_text

    try:
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(redact_text(traceback.format_exc()))  # signed URLs never reach a log
    except OSError as exc:
        return f" (no traceback kept: {log_file}: {exc.strerror})"
    return f" (traceback: {log_file})"


def _last_line(exc: BaseException) -> str:
    """An error's last non-empty line (Py4J's Java errors carry a whole stack trace)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
