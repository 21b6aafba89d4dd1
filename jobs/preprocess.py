"""spark-submit entry point: ``spark-submit jobs/preprocess.py INPUT OUTPUT [options]``.

Takes exactly the options of ``fmaprep preprocess``; all logic lives in the fmaprep package.
Without ``--master`` among the job's options, spark-submit's ``--master`` applies (not the
CLI's ``local[*]`` default).
"""

import sys

from fmaprep.cli import main
from fmaprep.spark.session import submitted_master


def job_args(argv: list[str]) -> list[str]:
    if any(arg == "--master" or arg.startswith("--master=") for arg in argv):
        return argv
    master = submitted_master()
    return [*argv, "--master", master] if master else argv


if __name__ == "__main__":
    sys.exit(main(["preprocess", *job_args(sys.argv[1:])]))
