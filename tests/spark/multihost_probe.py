"""A PySpark application that tests/spark/test_multi_host.py submits to the multi-host cluster
(scripts/local-hosts.sh): which of the given files the driver and each executor can read, on
which host and with which Python. Not a test module; run as
``spark-submit multihost_probe.py OUT PATH...`` (OUT: where the JSON result goes, hdfs://...).
"""

import json
import os
import socket
import sys
import time

from pyspark.sql import SparkSession


def look(paths: list[str]) -> dict[str, object]:
    readable = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.read(1)
            readable[path] = True
        except OSError:
            readable[path] = False
    return {
        "host": socket.gethostname(),
        "python": os.path.realpath(sys.executable),
        "readable": readable,
    }


def main() -> None:
    args = sys.argv[1:]
    job = args[args.index("--") + 1 :] if "--" in args else None
    out, paths = args[0], args[1 : args.index("--")] if job is not None else args[1:]
    spark = SparkSession.builder.appName("fmaprep-multihost-probe").getOrCreate()
    sc = spark.sparkContext

    def task(_: int) -> dict[str, object]:
        time.sleep(0.5)  # long enough that every executor gets some of the tasks
        return look(paths)

    executors = sc.parallelize(range(12), 12).map(task).collect()
    result = {"driver": look(paths), "executors": executors}
    sc.parallelize([json.dumps(result)], 1).saveAsTextFile(out)
    if job is None:
        spark.stop()
        return
    # the job's session is this one (getOrCreate): what spark-submit set applies to both
    from fmaprep.cli import main as fmaprep_main
    from fmaprep.spark.session import submitted_master

    master = submitted_master()
    sys.exit(fmaprep_main(["preprocess", *job, *(["--master", master] if master else [])]))


if __name__ == "__main__":
    main()
