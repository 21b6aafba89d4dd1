"""fmaprep package-env OUT.tar.gz: the runtime environment as an archive for cluster workers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "package-env"
HELP = "pack a relocatable venv with fmaprep and its dependencies, for spark-submit --archives"
EXAMPLES = """\
  fmaprep package-env build/fmaprep-env.tar.gz
  fmaprep package-env build/fmaprep-env.tar.gz --python-prefix /usr   # workers: /usr/bin/python3.11
  fmaprep package-env env.tar.gz --wheel dist/fmaprep-0.1.0-py3-none-any.whl
  spark-submit --master spark://127.0.0.1:7177 \\
      --archives build/fmaprep-env.tar.gz#environment \\
      --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python \\
      jobs/preprocess.py INPUT OUTPUT
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", metavar="OUT.tar.gz", type=Path, help="the archive to write")
    p.add_argument(
        "--python",
        metavar="PYTHON3.11",
        help="base interpreter for the packed venv (default: the one this venv was made from)",
    )
    p.add_argument(
        "--python-prefix",
        metavar="PREFIX",
        help="where python3.11 lives on the workers: PREFIX/bin/python3.11 "
        "(default: the base interpreter's prefix; EMR 7: /usr)",
    )
    p.add_argument(
        "--wheel", type=Path, help="a prebuilt fmaprep wheel (default: build one from the source)"
    )


def run(args: argparse.Namespace) -> int:
    from fmaprep.spark.packaging import PackagingError, package_env, submit_hint

    try:
        packed = package_env(
            args.output, python=args.python, python_prefix=args.python_prefix, wheel=args.wheel
        )
    except PackagingError as exc:
        print(f"fmaprep package-env: {exc}", file=sys.stderr)
        return 2
    size_mb = packed.size_bytes / 1e6
    print(f"wrote {packed.archive} ({size_mb:.1f} MB, {len(packed.packages)} packages)")
    print(f"workers need Python 3.11 at {packed.python_link} (environment/bin/python links there)")
    print(f"use with: spark-submit {submit_hint(packed.archive)} jobs/preprocess.py INPUT OUTPUT")
    return 0
